"""The leaderboard pages (the client's and the public one), who may open them, and making a
leaderboard public: the page's form and the `study_visibility_set` service behind it."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied

from crowdplatform.accounts.models import AccountType
from crowdplatform.accounts.principals import ApiKeyPrincipal
from crowdplatform.core.models import AuditEvent
from evaluations import leaderboard as leaderboard_module
from evaluations import services
from evaluations.models import Study, Vote
from tests.evaluations.conftest import snapshot
from tests.evaluations.test_leaderboard import X, Y, Z, vote
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def voted(make_live_study, make_rater, owner) -> Study:
    """X beats Y three times, loses once, one tie; Z registered afterwards, never voted on."""
    study = make_live_study(systems=(X, Y), items=5)
    rater = make_rater()
    for winner in (X, X, X, Y, "tie"):
        vote(rater, study, winner, criteria={"accuracy": Y})
    services.system_register(study=study, actor=owner, name=Z)
    return study


def page_url(study: Study) -> str:
    return f"/client/orgs/{study.organization.slug}/studies/{study.pk}/leaderboard/"


def public_url(study: Study) -> str:
    return f"/leaderboards/{study.pk}/"


def visibility_url(study: Study) -> str:
    return page_url(study) + "visibility/"


def table_rows(html: str) -> list[list[str]]:
    """The leaderboard table's cells, tags stripped, whitespace collapsed."""
    body = html.split('id="leaderboard"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def made_public(study: Study) -> Study:
    Study.objects.filter(pk=study.pk).update(is_public=True)
    study.refresh_from_db()
    return study


# --- The client's page --------------------------------------------------------------------------


def test_the_client_page_shows_table_charts_method_and_totals(client, owner, voted):
    client.force_login(owner)

    response = client.get(page_url(voted))

    assert response.status_code == 200
    html = response.text
    board = response.context["board"]
    x, y = board.rows[0], board.rows[1]
    assert table_rows(html) == [
        ["1", f"{X} provisional", f"{x.rating:.0f}", f"{x.ci_low:.0f} – {x.ci_high:.0f}", "5", f"{x.elo:.0f}"],
        [str(y.rank), f"{Y} provisional", f"{y.rating:.0f}", f"{y.ci_low:.0f} – {y.ci_high:.0f}", "5", f"{y.elo:.0f}"],
        ["—", Z, "no votes yet", "0", "—"],
    ]
    assert html.count('class="badge badge-warn"') == 2  # provisional: 5 votes < 100; none for Z
    assert 'class="chart leaderboard-chart"' in html
    assert 'class="chart leaderboard-heatmap"' in html
    assert "<title>sys-x won 70% of 5 battles against sys-y</title>" in html
    assert "5 votes." in " ".join(html.split())
    assert "1000 bootstrap rounds (seed 0)" in html
    assert "counts as half a win for each side" in html
    assert "Make the leaderboard public" in html


def test_the_excluded_votes_line_links_the_quality_report(client, owner, voted):
    Vote.objects.filter(choice="b").update(quality_status="excluded", quality_reason="too fast")
    client.force_login(owner)

    html = client.get(page_url(voted)).text

    line = " ".join(re.sub(r"<[^>]+>", " ", html.split('id="vote-totals">', 1)[1].split("</p>", 1)[0]).split())
    assert line == "4 votes; 1 excluded by quality checks ( see quality report )."
    assert f'href="/client/orgs/{voted.organization.slug}/studies/{voted.pk}/#quality-heading"' in html


def test_the_criterion_switcher(client, owner, voted):
    client.force_login(owner)

    response = client.get(page_url(voted), {"criterion": "accuracy"})

    html = response.text
    assert response.context["board"].criterion == "accuracy"
    assert [row[1] for row in table_rows(html)] == [
        f"{Y} provisional",
        f"{X} provisional",
        Z,
    ]  # on accuracy Y won every vote
    assert "Ratings on accuracy" in html
    assert f'<a href="{page_url(voted)}?criterion=accuracy" aria-current="page">accuracy</a>' in html
    assert f'<a href="{page_url(voted)}">Overall</a>' in html
    assert client.get(page_url(voted), {"criterion": "style"}).status_code == 404


def test_no_votes_is_an_empty_state_that_still_lists_every_system(client, owner, make_live_study):
    study = make_live_study(systems=(X, Y))
    client.force_login(owner)

    html = client.get(page_url(study)).text

    assert "No votes yet" in html
    assert table_rows(html) == [["—", X, "no votes yet", "0", "—"], ["—", Y, "no votes yet", "0", "—"]]
    assert "leaderboard-chart" not in html


def test_an_engine_error_is_shown_on_the_page(client, owner, voted, monkeypatch):
    def refuse(**kwargs):
        raise ValueError("The comparison graph is in 2 pieces that no vote connects.")

    monkeypatch.setattr(leaderboard_module, "ratings_compute", refuse)
    client.force_login(owner)

    response = client.get(page_url(voted))

    assert response.status_code == 200
    assert "The comparison graph is in 2 pieces that no vote connects." in response.text
    board = response.context["board"]
    elo = {row.system: f"{row.elo:.0f}" for row in board.rows if row.elo is not None}  # Elo needs no fit
    assert [row[1:] for row in table_rows(response.text)] == [
        [f"{X} provisional", "—", "—", "5", elo[X]],
        [f"{Y} provisional", "—", "—", "5", elo[Y]],
        [Z, "no votes yet", "0", "—"],
    ]


def test_system_names_are_escaped_in_the_table_and_the_charts(client, owner, make_live_study, make_rater):
    study = make_live_study(systems=(EVIL, Y), items=2)
    rater = make_rater()
    vote(rater, study, EVIL)
    vote(rater, study, Y)
    client.force_login(owner)

    html = client.get(page_url(study)).text

    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # table, chart row, heatmap labels and cells


def test_the_study_page_links_the_leaderboard(client, owner, voted):
    client.force_login(owner)

    html = client.get(f"/client/orgs/{voted.organization.slug}/studies/{voted.pk}/").text

    assert f'href="{page_url(voted)}">Leaderboard</a>' in html


# --- Who may open which page --------------------------------------------------------------------


def test_a_member_sees_the_page_without_the_switch(client, member, voted):
    client.force_login(member)

    html = client.get(page_url(voted)).text

    assert "Make the leaderboard public" not in html
    assert "Only an owner of Alpha Lab can change this." in html


def test_another_organization_gets_404_on_the_client_page(client, other_owner, voted):
    client.force_login(other_owner)

    assert client.get(page_url(voted)).status_code == 404
    # Even under its own organization's slug.
    other_slug = other_owner.memberships.get().organization.slug
    assert client.get(f"/client/orgs/{other_slug}/studies/{voted.pk}/leaderboard/").status_code == 404


def test_raters_are_kept_out_of_the_client_area(client, voted):
    client.force_login(UserFactory(account_type=AccountType.RATER))

    assert client.get(page_url(voted)).status_code == 403  # as every client page
    assert client.get(public_url(voted)).status_code == 404


def test_a_private_study_has_no_public_page(client, voted, other_owner, owner):
    assert client.get(public_url(voted)).status_code == 404  # anonymous
    client.force_login(other_owner)
    assert client.get(public_url(voted)).status_code == 404
    client.force_login(owner)
    assert client.get(public_url(voted)).status_code == 404  # owners use their own page
    assert client.get("/leaderboards/999999/").status_code == 404


def test_anyone_opens_a_public_studys_page(client, voted, other_owner):
    made_public(voted)

    anonymous = client.get(public_url(voted))
    client.force_login(other_owner)
    other = client.get(public_url(voted))

    assert (anonymous.status_code, other.status_code) == (200, 200)
    html = anonymous.text
    assert [row[1] for row in table_rows(html)] == [f"{X} provisional", f"{Y} provisional", Z]
    assert "leaderboard-heatmap" in html
    assert "visibility" not in html  # no switch, no link back into the client area
    assert "/client/" not in html
    assert f'<a href="{public_url(voted)}?criterion=accuracy">accuracy</a>' in html
    rater_email = Vote.objects.select_related("rater__user").first().rater.user.email
    assert rater_email not in html
    assert "Question 0?" not in html  # no prompt
    assert "answers 0" not in html  # no response


def test_anonymous_visitors_of_the_client_page_are_sent_to_log_in(client, voted):
    response = client.get(page_url(voted))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- Making it public ---------------------------------------------------------------------------


def test_the_owner_makes_it_public_and_private_again(client, owner, voted):
    client.force_login(owner)

    response = client.post(visibility_url(voted), {"is_public": "1"}, follow=True)

    voted.refresh_from_db()
    assert voted.is_public is True
    assert "The leaderboard is public: anyone with its link can see it." in response.text
    assert f"http://testserver/leaderboards/{voted.pk}/" in response.text
    assert "Make it private" in response.text
    assert client.get(public_url(voted)).status_code == 200

    client.post(visibility_url(voted), {"is_public": "0"})

    voted.refresh_from_db()
    assert voted.is_public is False
    assert list(AuditEvent.objects.filter(action="study.visibility_set").values_list("data", flat=True)) == [
        {"is_public": False},
        {"is_public": True},
    ]


def test_a_member_cannot_make_it_public(client, member, voted):
    client.force_login(member)
    before = snapshot()

    response = client.post(visibility_url(voted), {"is_public": "1"})

    assert response.status_code == 403
    assert Study.objects.get(pk=voted.pk).is_public is False
    assert snapshot() == before


def test_a_bad_choice_changes_nothing(client, owner, voted):
    client.force_login(owner)
    before = snapshot()

    response = client.post(visibility_url(voted), {"is_public": "yes"}, follow=True)

    assert "Choose public or private." in response.text
    assert Study.objects.get(pk=voted.pk).is_public is False
    assert snapshot() == before


def test_the_switch_takes_only_posts(client, owner, voted):
    client.force_login(owner)

    assert client.get(visibility_url(voted)).status_code == 405


def test_service_owner_and_staff_may_and_it_is_audited(owner, staff_user, voted, organization):
    study = services.study_visibility_set(study=voted, actor=owner, is_public=True)

    assert (study.is_public, Study.objects.get(pk=voted.pk).is_public) == (True, True)
    event = AuditEvent.objects.get(action="study.visibility_set")
    assert (event.actor_user, event.target_type, event.target_id, event.organization_id, event.data) == (
        owner,
        "evaluations.study",
        str(voted.pk),
        organization.pk,
        {"is_public": True},
    )

    services.study_visibility_set(study=voted, actor=staff_user, is_public=False)

    assert Study.objects.get(pk=voted.pk).is_public is False
    assert AuditEvent.objects.filter(action="study.visibility_set").count() == 2


def test_service_setting_the_same_value_records_nothing(owner, voted):
    before = snapshot()

    services.study_visibility_set(study=voted, actor=owner, is_public=False)

    assert snapshot() == before


@pytest.mark.parametrize("who", ["member", "api_key", "other_owner"])
def test_service_refuses_anyone_but_owners_and_staff(request, voted, who):
    actor = (
        ApiKeyPrincipal(request.getfixturevalue("api_key_pair")[0])
        if who == "api_key"
        else request.getfixturevalue(who)
    )
    before = snapshot()

    with pytest.raises(PermissionDenied) as error:
        services.study_visibility_set(study=voted, actor=actor, is_public=True)

    assert str(error.value) == "Only an owner of the organization may make its leaderboards public or private."
    assert Study.objects.get(pk=voted.pk).is_public is False
    assert snapshot() == before
