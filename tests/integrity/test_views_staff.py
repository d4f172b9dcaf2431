"""The staff pages that run public leaderboards (crowdplatform/integrity/views_staff.py, staff_pages.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.storage import storages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import publishing, services
from crowdplatform.integrity.models import (
    LicenseClass,
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.integrity.staff_pages import StudiesWithheld
from evaluations import services as evaluations_services
from evaluations.models import Study, StudyStatus, System
from tests.evaluations.conftest import study_input
from tests.factories import OrganizationFactory
from tests.integrity.conftest import PARAMETERS, POLICY_TEXT, integrity_snapshot

pytestmark = pytest.mark.django_db

LEADERBOARDS = reverse("staff:leaderboards")
PROVIDERS = reverse("staff:providers")


def page(slug: str = "open-arena", action: str = "") -> str:
    return reverse(f"staff:leaderboard{'_' + action if action else ''}", args=[slug])


def leaderboard_post(study: Study, **overrides: Any) -> dict[str, Any]:
    return {
        "study": study.pk,
        "name": "Coding arena",
        "slug": "coding-arena",
        "starts_at": "2026-02-01T09:30",
        "policy_text": "One rule for everyone.",
        **PARAMETERS,
        **overrides,
    }


def policy_post(**overrides: Any) -> dict[str, Any]:
    return {"text": "Version two: a lower cap.", **PARAMETERS, **overrides}


def submission_post(provider: Provider, name: str, **overrides: Any) -> dict[str, Any]:
    return {"provider": provider.pk, "name": name, "license_class": LicenseClass.OPEN_WEIGHTS, "notes": "", **overrides}


def flash(client: Client, response: Any) -> list[str]:
    """The messages on the page the response redirects to (read, and so consumed, as a browser would)."""
    return [str(message) for message in client.get(response["Location"]).context["messages"]]


@pytest.fixture
def staff_client(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


@pytest.fixture
def draft_study(make_study) -> Study:
    return make_study(name="Second study")


# --- Access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "client", "rater"])
def test_only_staff_see_the_pages_or_change_anything(
    client, who, leaderboard, providers, provider_owner, rater, draft_study
):
    if who == "client":
        client.force_login(provider_owner)  # even the owner of a provider's organization
    elif who == "rater":
        client.force_login(rater)
    gamma = providers[LicenseClass.PROPRIETARY]
    before = integrity_snapshot()
    requests = [
        ("get", LEADERBOARDS, {}),
        ("get", page(), {}),
        ("post", LEADERBOARDS, leaderboard_post(draft_study)),
        ("post", PROVIDERS, {"name": "New Lab", "website": ""}),
        ("post", page(action="policy"), policy_post(prerelease_cap=1)),
        ("post", page(action="submissions"), submission_post(gamma, "gamma-1", license_class="proprietary")),
        ("post", page(action="publish"), {}),
    ]
    for method, url, data in requests:
        response = getattr(client, method)(url, data)
        if who == "anonymous":
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("account_login")), url
        else:
            assert response.status_code == 403, url
    assert integrity_snapshot() == before


def test_the_dashboard_links_to_the_leaderboards(staff_client):
    assert f'href="{LEADERBOARDS}"' in staff_client.get(reverse("staff:dashboard")).text


# --- The leaderboards page ----------------------------------------------------------------------


def test_the_list_shows_leaderboards_providers_and_only_the_studies_offered(
    staff_client, leaderboard, providers, submit, draft_study, make_study, provider_organization, provider_owner
):
    submit(providers[LicenseClass.OPEN_SOURCE], "commons-1")
    evaluations_services.study_create(
        organization=provider_organization, actor=provider_owner, data=study_input(name="Gamma's own study")
    )
    zeta = OrganizationFactory(name="Zeta Lab")
    closed = make_study(name="Closed study")
    Study.objects.filter(pk=closed.pk).update(status=StudyStatus.ARCHIVED)
    paused = make_study(name="Paused study")
    Study.objects.filter(pk=paused.pk).update(status=StudyStatus.PAUSED)

    response = staff_client.get(LEADERBOARDS)

    assert response.status_code == 200
    [row] = response.context["rows"]
    assert (row.leaderboard, row.parameters, row.policy_version, row.submissions, row.last_release) == (
        leaderboard,
        list(PARAMETERS.values()),
        1,
        1,
        None,
    )
    assert list(response.context["leaderboard_form"].fields["study"].queryset) == [draft_study]
    assert response.context["withheld"] == StudiesWithheld(running_leaderboard=1, paused=1, closed=1, provider_owned=1)
    listed = [(p.name, p.organization_id, p.submission_count) for p in response.context["providers"]]
    gamma = providers[LicenseClass.PROPRIETARY]
    assert listed == [("Commons Lab", None, 1), ("Gamma AI", gamma.organization_id, 0), ("Open Weights Co", None, 0)]
    # Gamma AI's organization is a provider already; Alpha Lab runs the leaderboard's study.
    offered = list(response.context["provider_form"].fields["organization"].queryset)
    assert offered == [zeta]


def test_the_list_has_empty_states(staff_client):
    response = staff_client.get(LEADERBOARDS)
    assert response.status_code == 200
    for title in ("No public leaderboard yet", "No study can run a leaderboard now", "No provider yet"):
        assert title in response.text


def test_staff_open_a_leaderboard(staff_client, staff_user, draft_study):
    response = staff_client.post(LEADERBOARDS, leaderboard_post(draft_study, period_days=7, prerelease_cap=0))

    leaderboard = PublicLeaderboard.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page("coding-arena")
    parameters = {**PARAMETERS, "period_days": 7, "prerelease_cap": 0}
    assert (leaderboard.name, leaderboard.slug, leaderboard.starts_at, leaderboard.study) == (
        "Coding arena",
        "coding-arena",
        datetime(2026, 2, 1, 9, 30, tzinfo=UTC),
        draft_study,
    )
    assert services.parameters_of(leaderboard) == parameters
    draft_study.refresh_from_db()
    assert (draft_study.is_public, draft_study.sampling) == (True, "active")
    version = PolicyVersion.objects.get()
    assert (version.number, version.text, version.parameters) == (1, "One rule for everyone.", parameters)
    event = AuditEvent.objects.get(action="integrity.leaderboard_create")
    assert (event.actor_user_id, event.data["study_id"], event.data["study_before"]) == (
        staff_user.pk,
        draft_study.pk,
        {"is_public": False, "sampling": "uniform"},
    )
    assert flash(staff_client, response) == [
        "Opened “Coding arena” on Second study: the study is public and sampled with the active policy for every "
        "system; policy version 1 is published."
    ]


def test_invalid_parameters_are_refused_per_field(staff_client, draft_study):
    before = integrity_snapshot()
    response = staff_client.post(LEADERBOARDS, leaderboard_post(draft_study, period_days=0, retire_newer_required=0))

    assert response.status_code == 400
    assert response.context["leaderboard_form"].errors == {
        "period_days": ["A whole number from 1 to 32767."],
        "retire_newer_required": ["A whole number from 1 to 32767."],
    }
    assert integrity_snapshot() == before


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"slug": "Coding Arena"}, {"slug": ["Lower-case letters, digits and hyphens (up to 100)."]}),
        ({"policy_text": "  "}, {"policy_text": ["This field is required."]}),
        ({"prerelease_cap": "two"}, {"prerelease_cap": ["Enter a whole number."]}),
        ({"starts_at": "soon"}, {"starts_at": ["Enter a valid date/time."]}),
    ],
)
def test_other_invalid_leaderboards_are_refused(staff_client, draft_study, change, errors):
    before = integrity_snapshot()
    response = staff_client.post(LEADERBOARDS, leaderboard_post(draft_study, **change))
    assert response.status_code == 400
    assert response.context["leaderboard_form"].errors == errors
    assert integrity_snapshot() == before


def test_a_taken_slug_is_a_conflict(staff_client, leaderboard, draft_study):
    before = integrity_snapshot()
    response = staff_client.post(LEADERBOARDS, leaderboard_post(draft_study, slug="open-arena"))
    assert response.status_code == 409
    assert response.context["leaderboard_form"].non_field_errors() == [
        "A leaderboard with the slug 'open-arena' exists."
    ]
    assert "A leaderboard with the slug &#x27;open-arena&#x27; exists." in response.text
    assert integrity_snapshot() == before


def test_a_study_with_a_leaderboard_is_not_offered(staff_client, leaderboard):
    before = integrity_snapshot()
    response = staff_client.post(LEADERBOARDS, leaderboard_post(leaderboard.study))
    assert response.status_code == 400
    assert list(response.context["leaderboard_form"].errors) == ["study"]
    assert integrity_snapshot() == before


def test_staff_register_providers(staff_client, staff_user, organization):
    response = staff_client.post(
        PROVIDERS, {"name": "Alpha Lab", "website": "https://alpha.example", "organization": organization.pk}
    )
    assert response.status_code == 302
    assert response["Location"] == LEADERBOARDS + "#providers"
    provider = Provider.objects.get()
    assert (provider.name, provider.slug, provider.website, provider.organization, provider.registered_by) == (
        "Alpha Lab",
        "alpha-lab",
        "https://alpha.example",
        organization,
        staff_user,
    )
    assert AuditEvent.objects.filter(action="integrity.provider_register", target_id=str(provider.pk)).count() == 1
    assert flash(staff_client, response) == [
        "Registered the provider “Alpha Lab”: members of Alpha Lab or staff may submit its systems."
    ]

    response = staff_client.post(PROVIDERS, {"name": "Solo Lab", "website": ""})
    assert Provider.objects.get(name="Solo Lab").organization is None
    assert flash(staff_client, response) == ["Registered the provider “Solo Lab”: staff may submit its systems."]


def test_a_duplicate_provider_is_a_conflict(staff_client, providers):
    before = integrity_snapshot()
    response = staff_client.post(PROVIDERS, {"name": "gamma ai", "website": ""})
    assert response.status_code == 409
    assert response.context["provider_form"].non_field_errors() == [
        "A provider named 'gamma ai' is already registered."
    ]
    assert integrity_snapshot() == before


def test_an_invalid_provider_is_refused_per_field(staff_client, leaderboard, providers, provider_organization):
    before = integrity_snapshot()
    # Gamma AI's organization is a provider already, Alpha Lab runs the leaderboard: neither is offered.
    for organization in (provider_organization, leaderboard.study.organization):
        data = {"name": "New Lab", "website": "ftp://new.example", "organization": organization.pk}
        response = staff_client.post(PROVIDERS, data)
        assert response.status_code == 400
        assert sorted(response.context["provider_form"].errors) == ["organization"]
    response = staff_client.post(PROVIDERS, {"name": "New Lab", "website": "ftp://new.example"})
    assert response.status_code == 400
    assert response.context["provider_form"].errors == {"website": ["A web address starting with http:// or https://."]}
    assert integrity_snapshot() == before


# --- One leaderboard ----------------------------------------------------------------------------


def test_the_policy_form_is_prefilled_and_publishes_only_changes(staff_client, staff_user, leaderboard):
    form = staff_client.get(page()).context["policy_form"]
    assert {name: form[name].value() for name in services.PARAMETERS} == PARAMETERS
    assert form["text"].value() == POLICY_TEXT

    response = staff_client.post(page(action="policy"), policy_post(prerelease_cap=1))

    assert response.status_code == 302
    assert response["Location"] == page() + "#policy"
    version = PolicyVersion.objects.get(leaderboard=leaderboard, number=2)
    assert (version.text, version.parameters, version.created_by) == (
        "Version two: a lower cap.",
        {**PARAMETERS, "prerelease_cap": 1},
        staff_user,
    )
    leaderboard.refresh_from_db()
    assert leaderboard.prerelease_cap == 1
    event = AuditEvent.objects.get(action="integrity.policy_publish")
    assert event.data == {"leaderboard_id": leaderboard.pk, "number": 2, "changed": {"prerelease_cap": [2, 1]}}
    assert flash(staff_client, response) == ["Published policy version 2 (changed: pre-release cap 2 → 1)."]

    history = staff_client.get(page()).context["policy"]
    assert [(row.number, [p.value for p in row.parameters if p.changed]) for row in history] == [(2, [1]), (1, [])]


def test_a_policy_without_text_or_with_a_bad_parameter_is_refused(staff_client, leaderboard):
    before = integrity_snapshot()
    response = staff_client.post(page(action="policy"), policy_post(text=" ", window_days=0))
    assert response.status_code == 400
    assert response.context["policy_form"].errors == {"text": ["This field is required."]}
    response = staff_client.post(page(action="policy"), policy_post(window_days=0))
    assert response.status_code == 400
    assert response.context["policy_form"].errors == {"window_days": ["A whole number from 1 to 32767."]}
    assert integrity_snapshot() == before


def test_staff_submit_for_a_provider(staff_client, staff_user, leaderboard, providers):
    open_weights = providers[LicenseClass.OPEN_WEIGHTS]
    before = timezone.now()
    response = staff_client.post(page(action="submissions"), submission_post(open_weights, "ow-7b", notes="v1"))

    assert response.status_code == 302
    assert response["Location"] == page() + "#submissions"
    submission = Submission.objects.get()
    assert (
        submission.provider,
        submission.system.name,
        submission.system.provider,
        submission.license_class,
        submission.prerelease,
        submission.registered_by,
    ) == (open_weights, "ow-7b", "Open Weights Co", "open_weights", False, staff_user)
    assert submission.window_ends_at - submission.registered_at == timedelta(days=PARAMETERS["window_days"])
    assert submission.registered_at >= before
    assert AuditEvent.objects.filter(action="integrity.submission_register").count() == 1
    [row] = staff_client.get(page()).context["submissions"]
    assert (row.submission, row.status, row.result) == (submission, "testing", None)


def test_the_prerelease_cap_refuses_a_third_variant(staff_client, leaderboard, providers):
    gamma = providers[LicenseClass.PROPRIETARY]
    for codename in ("gamma-x", "gamma-y"):
        data = submission_post(gamma, codename, license_class="proprietary", prerelease="on")
        assert staff_client.post(page(action="submissions"), data).status_code == 302
    before = integrity_snapshot()

    data = submission_post(gamma, "gamma-z", license_class="proprietary", prerelease="on")
    response = staff_client.post(page(action="submissions"), data)

    assert response.status_code == 409
    [error] = response.context["submission_form"].non_field_errors()
    assert error.startswith("Gamma AI has registered 2 pre-release variant(s) in the period that began on ")
    assert "the cap is 2 per provider per period, the same for everyone." in error
    assert integrity_snapshot() == before
    assert not System.objects.filter(name="gamma-z").exists()


def test_a_duplicate_system_name_is_a_conflict(staff_client, leaderboard, providers):
    before = integrity_snapshot()
    response = staff_client.post(page(action="submissions"), submission_post(providers["open_weights"], "base-a"))
    assert response.status_code == 409
    assert response.context["submission_form"].non_field_errors() == ["A system named 'base-a' is already registered."]
    assert integrity_snapshot() == before


def test_a_submission_whose_window_ended_awaits_the_next_run(staff_client, leaderboard, providers, submit):
    submit(providers[LicenseClass.OPEN_SOURCE], "commons-1")  # registered 2026-01-11, a 14-day window
    response = staff_client.get(page())
    [row] = response.context["submissions"]
    assert (row.status, row.result) == ("testing", None)
    assert 'window ended</span> <span class="small muted">published at the next run' in response.text


def test_an_unknown_leaderboard_is_404(staff_client, db):
    assert staff_client.get(page("nowhere")).status_code == 404
    assert staff_client.post(page("nowhere", "publish")).status_code == 404


def test_the_detail_page_has_empty_states(staff_client, leaderboard):
    response = staff_client.get(page())
    assert response.status_code == 200
    for title in ("No submission yet", "Register a provider first", "No period has ended yet"):
        assert title in response.text


# --- Publishing now -----------------------------------------------------------------------------


@pytest.fixture
def release_storage(settings, tmp_path) -> Any:
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**settings.STORAGES["private"], "OPTIONS": {"location": str(tmp_path / "private")}},
    }
    return storages["private"]


def test_publishing_now_writes_what_is_due_once(
    staff_client, staff_user, public_study, providers, release_storage, monkeypatch
):
    """Placed relative to the real clock (the button runs the task, which reads it): one 7-day
    period has ended, and both submissions' one-day windows."""
    monkeypatch.setattr(publishing, "PUBLISH_BOOTSTRAP", 20)
    starts_at = timezone.now() - timedelta(days=10)
    leaderboard = services.leaderboard_create(
        study=public_study,
        name="Open Arena",
        slug="open-arena",
        starts_at=starts_at,
        actor=staff_user,
        policy_text=POLICY_TEXT,
        **{**PARAMETERS, "period_days": 7, "window_days": 1},
    )
    for provider, name in ((providers["open_source"], "commons-1"), (providers["open_weights"], "ow-1")):
        services.submission_register(
            leaderboard=leaderboard,
            provider=provider,
            name=name,
            license_class=provider_license(provider),
            prerelease=False,
            actor=staff_user,
            now=starts_at + timedelta(hours=1),
        )

    response = staff_client.post(page(action="publish"))

    assert response.status_code == 302
    assert response["Location"] == page() + "#publishing"
    assert flash(staff_client, response) == [
        "Publishing ran for every leaderboard: 2 results published or refreshed, 0 systems retired, 1 period released."
    ]
    assert PublishedResult.objects.count() == 2
    release = PeriodRelease.objects.get()
    before = integrity_snapshot()
    published = sorted(Submission.objects.values_list("pk", "published_at"))

    again = staff_client.post(page(action="publish"))

    assert flash(staff_client, again) == [
        "Publishing ran for every leaderboard: nothing was due, nothing new was written."
    ]
    assert integrity_snapshot() == {**before, "audit": before["audit"] + 1}  # only who asked, recorded
    assert sorted(Submission.objects.values_list("pk", "published_at")) == published
    runs = AuditEvent.objects.filter(action="integrity.publishing_run").order_by("id")
    assert [(event.actor_user_id, {k: v for k, v in event.data.items() if k != "now"}) for event in runs] == [
        (staff_user.pk, {"results": 2, "retired": 0, "releases": 1, "releases_broken": 0}),
        (staff_user.pk, {"results": 0, "retired": 0, "releases": 0, "releases_broken": 0}),
    ]

    detail = staff_client.get(page())
    assert [(row.submission.system.name, row.status, row.result.votes) for row in detail.context["submissions"]] == [
        ("ow-1", "published", 0),
        ("commons-1", "published", 0),
    ]
    [row] = detail.context["releases"]
    assert (row.release, row.verified, row.problem) == (release, True, "")
    assert release.chain_sha256 in detail.text
    [listed] = staff_client.get(LEADERBOARDS).context["rows"]
    assert (listed.submissions, listed.last_release) == (2, release)


def provider_license(provider: Provider) -> str:
    return {"Commons Lab": LicenseClass.OPEN_SOURCE, "Open Weights Co": LicenseClass.OPEN_WEIGHTS}[provider.name]


def test_starts_at_is_read_as_utc(staff_client, draft_study):
    timezone.activate("Europe/Berlin")
    try:
        staff_client.post(LEADERBOARDS, leaderboard_post(draft_study, starts_at="2026-03-01T00:00"))
    finally:
        timezone.deactivate()
    assert PublicLeaderboard.objects.get().starts_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_provider_organization_is_offered_until_it_is_one(staff_client, db):
    lab = OrganizationFactory(name="Delta Lab")
    assert list(staff_client.get(LEADERBOARDS).context["provider_form"].fields["organization"].queryset) == [lab]
    staff_client.post(PROVIDERS, {"name": "Delta", "website": "", "organization": lab.pk})
    assert list(staff_client.get(LEADERBOARDS).context["provider_form"].fields["organization"].queryset) == []
