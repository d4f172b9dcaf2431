"""The quality pages: the staff queue and evidence, staff actions through the forms, the rater's own
page with thresholds, reasons and appeals, and who may see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from crowdplatform.quality.models import QualityAction, QualityAppeal, RaterStudyPause
from crowdplatform.quality.rules import rules_evaluate
from crowdplatform.quality.selectors import prompt_excerpt
from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.models import Vote
from payments.models import Earning
from tests.evaluations import conftest as evaluations_fixtures
from tests.payments import conftest as payments_fixtures
from tests.quality.test_rules import signal_for
from tests.quality.test_services import quality_state

pytestmark = pytest.mark.django_db

add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
upload = evaluations_fixtures.upload
vote_as = payments_fixtures.vote_as


@pytest.fixture
def study(make_live_study):
    return make_live_study(name="Coding help", items=4, gold=4, gold_rate=0.5)


@pytest.fixture
def flagged(study, make_rater):
    """A rater with ordinary votes and a wrong gold answer, caught by the gold rule."""
    rater = make_rater()
    for seconds in (8, 20):  # a draw above the gold rate: ordinary pairs
        task = task_next(rater=rater, study=study, rng=evaluations_fixtures.FixedRandom(0.9))
        assert not task.is_gold
        now = task.leased_at + timedelta(seconds=seconds)
        vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice="a"), now=now)
    # A draw below the gold rate picks a gold pair.
    gold = task_next(rater=rater, study=study, rng=evaluations_fixtures.FixedRandom(0.1))
    assert gold.is_gold
    wrong = "a" if gold.response_a.label == "bad" else "b"
    vote_submit(task_id=gold.pk, rater=rater, data=VoteInput(choice=wrong, rationale="Looks more complete to me."))
    signal_for(rater, study, votes=3, gold_votes=10, gold_correct=2, median_seconds=20.0, fast_threshold_seconds=5.0)
    rules_evaluate()
    return rater


def page(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# --- Staff ------------------------------------------------------------------------------------------


def test_the_queue_lists_flagged_raters_with_their_figures(client, staff_user, flagged):
    html = page(client, staff_user, reverse("quality:staff_queue"))
    assert flagged.user.email in html
    assert "Gold questions" in html
    assert reverse("quality:staff_rater", args=[flagged.pk]) in html


def test_an_empty_queue_says_so(client, staff_user):
    assert "Nothing to review" in page(client, staff_user, "/staff/quality/")


def test_the_evidence_page_shows_figures_gold_mistakes_and_votes(client, staff_user, flagged):
    html = page(client, staff_user, f"/staff/quality/raters/{flagged.pk}/")
    assert "2/10 = 20%" in html
    gold = Vote.objects.select_related("item").get(rater=flagged, is_gold=True)
    assert f"<td>{prompt_excerpt(gold.item.prompt)}</td>" in html
    assert prompt_excerpt(gold.item.prompt).startswith("Gold question ")
    assert "“bad” (" in html  # the label the rater chose
    assert "“good”" in html  # the right answer
    assert "Looks more complete to me." in html
    assert "sys-a" not in html
    assert "sys-b" not in html
    assert html.count('name="task_ids"') == 3
    action = QualityAction.objects.filter(rater=flagged, kind="pause").get()
    assert action.reason in html


def test_staff_reject_pay_from_the_vote_sample(client, staff_user, flagged, study):
    votes = list(Vote.objects.filter(rater=flagged).order_by("pk"))
    client.force_login(staff_user)
    response = client.post(
        f"/staff/quality/raters/{flagged.pk}/actions/",
        {
            "kind": "reject_pay",
            "study": "",
            "reason": "Copied the prompt as the answer.",
            "task_ids": [votes[1].task_id],
        },
    )
    assert response.status_code == 302
    assert list(Earning.objects.filter(rater=flagged.user).order_by("vote_id").values_list("status", flat=True)) == [
        "held",
        "rejected",
        "held",
    ]
    assert "Copied the prompt as the answer." in page(client, flagged.user, "/rater/earnings/")


def test_a_refused_staff_action_changes_nothing(client, staff_user, flagged):
    client.force_login(staff_user)
    before = quality_state()
    response = client.post(
        f"/staff/quality/raters/{flagged.pk}/actions/", {"kind": "pause", "reason": "Careless votes."}
    )
    assert response.status_code == 302
    assert quality_state() == before
    response = client.post(
        f"/staff/quality/raters/{flagged.pk}/actions/", {"kind": "warn", "reason": "short"}, follow=True
    )
    assert "Nothing was done" in response.content.decode()
    assert quality_state() == before


def test_staff_apply_and_dismiss_proposals(client, staff_user, study, make_rater):
    rater = make_rater()
    signal_for(rater, study, votes=40, longest_run=20, a_choices=30, b_choices=0, position_p_value=1e-9)
    bias, run = sorted(rules_evaluate(), key=lambda a: a.rule)
    client.force_login(staff_user)
    client.post(f"/staff/quality/actions/{bias.pk}/decide/", {"decision": "apply"})
    client.post(f"/staff/quality/actions/{run.pk}/decide/", {"decision": "dismiss", "note": ""})
    run.refresh_from_db()
    assert run.status == "proposed"  # a dismissal needs a note
    client.post(f"/staff/quality/actions/{run.pk}/decide/", {"decision": "dismiss", "note": "Long runs are fine here."})
    bias.refresh_from_db()
    run.refresh_from_db()
    assert (bias.status, bias.decided_by, run.status) == ("applied", staff_user, "dismissed")


# --- The rater's page and appeals -------------------------------------------------------------------


def test_the_rater_sees_their_figures_thresholds_and_every_reason(client, flagged):
    html = page(client, flagged.user, reverse("quality:mine"))
    for action in QualityAction.objects.filter(rater=flagged):
        assert action.reason in html
    assert "2 of 10 (20%" in html
    assert "Fewer than 60% right after at least 10 gold questions." in html
    assert "The same answer 15 or more times in a row." in html
    assert "Staff review your votes first." in html
    assert "paused" in html


def test_a_rater_without_actions_sees_empty_states(client, make_rater):
    rater = make_rater()
    html = page(client, rater.user, "/rater/quality/")
    assert "No action has been taken about you" in html
    assert "No figures yet" in html


def test_the_rater_appeals_and_staff_uphold_it(client, staff_user, flagged, study):
    pause = QualityAction.objects.get(rater=flagged, kind="pause")
    client.force_login(flagged.user)
    response = client.post(f"/rater/quality/actions/{pause.pk}/appeal/", {"message": "The gold items were ambiguous."})
    assert response.status_code == 302
    appeal = QualityAppeal.objects.get()
    assert (appeal.action, appeal.status) == (pause, "open")
    staff_html = page(client, staff_user, f"/staff/quality/raters/{flagged.pk}/")
    assert "The gold items were ambiguous." in staff_html
    client.post(f"/staff/quality/appeals/{appeal.pk}/decide/", {"decision": "uphold", "response": "Agreed, lifted."})
    pause.refresh_from_db()
    assert pause.status == "reversed"
    assert not RaterStudyPause.objects.filter(lifted_at__isnull=True).exists()
    assert "Agreed, lifted." in page(client, flagged.user, "/rater/quality/")


def test_an_empty_appeal_is_refused_and_changes_nothing(client, flagged):
    pause = QualityAction.objects.get(rater=flagged, kind="pause")
    client.force_login(flagged.user)
    before = quality_state()
    response = client.post(f"/rater/quality/actions/{pause.pk}/appeal/", {"message": ""}, follow=True)
    assert "Appeal not sent" in response.content.decode()
    assert quality_state() == before


# --- Access ----------------------------------------------------------------------------------------------


def test_another_raters_action_is_not_found(client, flagged, make_rater):
    pause = QualityAction.objects.get(rater=flagged, kind="pause")
    other = make_rater()
    client.force_login(other.user)
    before = quality_state()
    assert client.post(f"/rater/quality/actions/{pause.pk}/appeal/", {"message": "Mine now."}).status_code == 404
    assert quality_state() == before
    assert pause.reason not in page(client, other.user, "/rater/quality/")


@pytest.mark.parametrize("url", ["/staff/quality/", "/staff/quality/raters/{profile}/"])
def test_staff_pages_are_for_staff_only(client, flagged, owner, url):
    url = url.format(profile=flagged.pk)
    for user in (flagged.user, owner):
        client.force_login(user)
        assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_staff_posts_are_for_staff_only(client, flagged):
    pause = QualityAction.objects.get(rater=flagged, kind="pause")
    client.force_login(flagged.user)
    before = quality_state()
    assert client.post(f"/staff/quality/actions/{pause.pk}/decide/", {"decision": "apply"}).status_code == 403
    assert (
        client.post(
            f"/staff/quality/raters/{flagged.pk}/actions/", {"kind": "clear", "reason": "I clear myself."}
        ).status_code
        == 403
    )
    assert quality_state() == before


def test_the_rater_page_is_for_raters(client, owner):
    client.force_login(owner)
    assert client.get("/rater/quality/").status_code == 403
