"""Client pages of a provider's organization: its public leaderboards, submitting a system, uploading responses.

The pages use the real clock, so the leaderboard here starts ten days before now: "the current period" is
the leaderboard's first one, whatever the date the suite runs on.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.html import escape

from crowdplatform.accounts.models import AccountType, Role
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import services, views_provider
from crowdplatform.integrity.models import LicenseClass, PublicLeaderboard, PublishedResult, Submission
from evaluations.models import Response
from tests.factories import UserFactory
from tests.integrity.conftest import BASE_SYSTEMS, PARAMETERS, POLICY_TEXT, integrity_snapshot

pytestmark = pytest.mark.django_db

PAGE = "/client/orgs/gamma-ai/provider/"
SUBMIT = "/client/orgs/gamma-ai/provider/leaderboards/open-arena/submissions/"


def responses_url(submission: Submission, org_slug: str = "gamma-ai") -> str:
    return f"/client/orgs/{org_slug}/provider/submissions/{submission.pk}/responses/"


def submission_form(**change: object) -> dict[str, object]:
    return {"name": "gamma-next", "license_class": "proprietary", "notes": "checkpoint 7", **change}


def responses_file(prompt_ids: tuple[str, ...] = ("p0", "p1", "p2"), *extra: dict) -> SimpleUploadedFile:
    lines = [{"prompt_id": prompt_id, "response": f"gamma answers {prompt_id}"} for prompt_id in prompt_ids]
    data = "".join(json.dumps(line) + "\n" for line in [*lines, *extra]).encode()
    return SimpleUploadedFile("responses.jsonl", data, content_type="application/jsonl")


@pytest.fixture
def arena(make_live_study, staff_user) -> PublicLeaderboard:
    """Open Arena over a live study with prompts p0, p1, p2 and one gold item, started ten days ago."""
    study = make_live_study(systems=BASE_SYSTEMS, items=3, gold=1)
    return services.leaderboard_create(
        study=study,
        name="Open Arena",
        slug="open-arena",
        starts_at=timezone.now() - timedelta(days=10),
        actor=staff_user,
        policy_text=POLICY_TEXT,
        **PARAMETERS,
    )


@pytest.fixture
def gamma(providers):
    return providers[LicenseClass.PROPRIETARY]


@pytest.fixture
def register(arena, staff_user):
    """register(provider, name, prerelease=False): a submission now, by staff unless told otherwise."""

    def do(provider, name: str, *, prerelease: bool = False, actor=None) -> Submission:
        return services.submission_register(
            leaderboard=arena,
            provider=provider,
            name=name,
            license_class=LicenseClass.PROPRIETARY,
            prerelease=prerelease,
            actor=actor or staff_user,
        )

    return do


def _content(response) -> str:
    """The page with runs of whitespace as one space: assertions read like the page, not its template."""
    return " ".join(response.content.decode().split())


# --- The provider page --------------------------------------------------------------------------


def test_the_page_shows_cap_usage_submissions_and_the_form(client, arena, gamma, provider_member, register):
    variant = register(gamma, "codename-x", prerelease=True)
    named = register(gamma, "gamma-2")
    Submission.objects.filter(pk=named.pk).update(published_at=timezone.now())
    PublishedResult.objects.create(
        submission=named, published_at=timezone.now(), rating=1012.4, ci_low=990.0, ci_high=1030.2, rank=1, votes=40
    )
    client.force_login(provider_member)

    response = client.get(PAGE)

    assert response.status_code == 200
    page = _content(response)
    start, end = arena.starts_at, arena.starts_at + timedelta(days=30)
    assert (
        f"<strong>1 of 2</strong> pre-release variants used in the period {start:%Y-%m-%d} – {end:%Y-%m-%d}; "
        f"the next period starts on {end:%Y-%m-%d %H:%M} UTC; the same cap for every provider."
    ) in page
    assert "cap reached" not in page
    assert page.index("gamma-2") < page.index("codename-x")  # newest first
    assert '1012 (990–1030), rank 1, 40 votes <span class="badge">provisional</span>' in page
    assert '<span class="badge badge-ok">published</span>' in page
    assert '<span class="badge ">testing</span>' in page
    assert f'action="{SUBMIT}"' in page
    assert 'id="id_open-arena_name"' in page
    assert responses_url(variant) in page
    assert responses_url(named) in page


def test_the_page_counts_each_systems_responses(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    services.submission_responses_upload(
        submission=submission, actor=provider_member, data=b'{"prompt_id": "p0", "response": "x"}\n'
    )
    client.force_login(provider_member)

    page = _content(client.get(PAGE))

    assert '<td class="num">1</td>' in page


def test_the_owner_submits_a_system(client, arena, gamma, provider_owner):
    client.force_login(provider_owner)

    response = client.post(SUBMIT, submission_form(prerelease="on"))

    assert response.status_code == 302
    assert response.url == f"{PAGE}#lb-open-arena"
    submission = Submission.objects.get()
    assert (
        submission.leaderboard_id,
        submission.provider_id,
        submission.system.name,
        submission.system.notes,
        submission.license_class,
        submission.prerelease,
        submission.registered_by_id,
    ) == (arena.pk, gamma.pk, "gamma-next", "checkpoint 7", "proprietary", True, provider_owner.pk)
    audit = AuditEvent.objects.get(action="integrity.submission_register")
    assert (audit.actor_user_id, audit.organization_id, audit.data["system"]) == (
        provider_owner.pk,
        gamma.organization_id,
        "gamma-next",
    )
    page = _content(client.get(response.url))
    assert "Registered gamma-next on Open Arena; its testing window ends on" in page
    assert "<strong>1 of 2</strong>" in page


def test_a_non_submitter_sees_no_form_and_is_refused_with_nothing_changed(
    client, arena, gamma, provider_member, register, monkeypatch
):
    """There is no read-only role yet (Role is owner or member): the page follows the services' rule,
    so narrowing it to owners turns a member into a reader, which is what a viewer role would be."""
    monkeypatch.setattr(services, "SUBMITTER_ROLES", frozenset({Role.OWNER}))
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)

    page = _content(client.get(PAGE))
    assert "gamma-next" in page
    assert f'action="{SUBMIT}"' not in page
    assert "only staff and the organization's owners and members register systems" in page
    responses_page = _content(client.get(responses_url(submission)))
    assert 'enctype="multipart/form-data"' not in responses_page

    before = integrity_snapshot()
    response = client.post(SUBMIT, submission_form(name="gamma-3"))
    assert response.status_code == 403
    assert "Only staff or the provider&#x27;s own organization may submit its systems." in _content(response)
    upload = client.post(responses_url(submission), {"file": responses_file()})
    assert upload.status_code == 403
    assert integrity_snapshot() == before


def test_the_cap_reached_is_a_409_with_nothing_changed(client, arena, gamma, provider_member, register):
    register(gamma, "variant-1", prerelease=True)
    register(gamma, "variant-2", prerelease=True)
    client.force_login(provider_member)
    assert "cap reached" in _content(client.get(PAGE))
    before = integrity_snapshot()

    response = client.post(SUBMIT, submission_form(name="variant-3", prerelease="on"))

    assert response.status_code == 409
    page = _content(response)
    assert "Nothing was registered: Gamma AI has registered 2 pre-release variant(s) in the period" in page
    assert 'value="variant-3"' in page  # the form keeps what was typed
    assert integrity_snapshot() == before


def test_a_named_system_is_still_accepted_at_the_cap(client, arena, gamma, provider_member, register):
    register(gamma, "variant-1", prerelease=True)
    register(gamma, "variant-2", prerelease=True)
    client.force_login(provider_member)

    response = client.post(SUBMIT, submission_form(name="gamma-2"))

    assert response.status_code == 302
    assert list(Submission.objects.order_by("id").values_list("system__name", "prerelease")) == [
        ("variant-1", True),
        ("variant-2", True),
        ("gamma-2", False),
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"license_class": "shareware"}, "license_class", "Select a valid choice. shareware is not one of"),
        ({"name": "tie"}, "name", "&#x27;tie&#x27; and &#x27;both_bad&#x27; are answers, not system names."),
    ],
)
def test_an_invalid_form_is_a_400_naming_the_field(client, arena, gamma, provider_member, change, field, message):
    client.force_login(provider_member)
    before = integrity_snapshot()

    response = client.post(SUBMIT, submission_form(**change))

    assert response.status_code == 400
    page = _content(response)
    assert f'id="id_open-arena_{field}_error"' in page
    assert message in page
    assert integrity_snapshot() == before


def test_a_duplicate_name_is_a_409(client, arena, gamma, provider_member, register):
    register(gamma, "gamma-next")
    client.force_login(provider_member)
    before = integrity_snapshot()

    response = client.post(SUBMIT, submission_form())

    assert response.status_code == 409
    assert "Nothing was registered: A system named &#x27;gamma-next&#x27; is already registered." in _content(response)
    assert integrity_snapshot() == before


def test_an_unknown_leaderboard_is_a_404(client, arena, gamma, provider_member):
    client.force_login(provider_member)
    before = integrity_snapshot()
    response = client.post("/client/orgs/gamma-ai/provider/leaderboards/nope/submissions/", submission_form())
    assert response.status_code == 404
    assert integrity_snapshot() == before


def test_another_organizations_member_gets_404s_and_changes_nothing(
    client, arena, gamma, owner, provider_member, register
):
    submission = register(gamma, "gamma-next")
    client.force_login(owner)  # owner of Alpha Lab, not of Gamma AI
    before = integrity_snapshot()

    assert client.get(PAGE).status_code == 404
    assert client.post(SUBMIT, submission_form(name="alpha-sneaks-in")).status_code == 404
    assert client.get(responses_url(submission)).status_code == 404
    assert client.post(responses_url(submission), {"file": responses_file()}).status_code == 404
    assert integrity_snapshot() == before


def test_another_providers_submission_is_a_404_for_a_member(client, arena, providers, provider_member, register):
    """Gamma AI's member may see Gamma AI's pages, not whether another provider's submission id exists."""
    other = register(providers[LicenseClass.OPEN_WEIGHTS], "open-1")
    client.force_login(provider_member)
    before = integrity_snapshot()

    assert client.get(responses_url(other)).status_code == 404
    assert client.post(responses_url(other), {"file": responses_file()}).status_code == 404
    assert client.get("/client/orgs/gamma-ai/provider/submissions/999999/responses/").status_code == 404
    assert integrity_snapshot() == before


def test_a_non_provider_organization_gets_the_empty_state(client, arena, providers, owner):
    client.force_login(owner)

    response = client.get("/client/orgs/alpha-lab/provider/")

    assert response.status_code == 200
    page = _content(response)
    assert "This organization is not a provider" in page
    assert "Staff register providers" in page
    assert "<form" not in page.split("<main", 1)[1]
    before = integrity_snapshot()
    post = client.post("/client/orgs/alpha-lab/provider/leaderboards/open-arena/submissions/", submission_form())
    assert post.status_code == 404
    assert integrity_snapshot() == before


def test_no_leaderboard_yet_is_an_empty_state(client, gamma, provider_member):
    client.force_login(provider_member)
    page = _content(client.get(PAGE))
    assert "No public leaderboards yet" in page


def test_a_leaderboard_not_yet_open_says_when_and_offers_no_form(
    client, make_live_study, staff_user, gamma, provider_member
):
    opens = timezone.now() + timedelta(days=3)
    services.leaderboard_create(
        study=make_live_study(systems=BASE_SYSTEMS, items=3),
        name="Future Arena",
        slug="future-arena",
        starts_at=opens,
        actor=staff_user,
        policy_text=POLICY_TEXT,
        **PARAMETERS,
    )
    client.force_login(provider_member)

    page = _content(client.get(PAGE))

    assert f"The leaderboard opens on {opens:%Y-%m-%d %H:%M} UTC" in page
    assert "/provider/leaderboards/future-arena/submissions/" not in page


# --- Access: staff, raters, anonymous -----------------------------------------------------------


def test_staff_use_the_client_pages_and_submit_for_the_provider(client, arena, gamma, staff_user):
    """area_required lets staff into every area and organization_for shows them every organization;
    the service lets staff submit for any provider: the pages agree."""
    client.force_login(staff_user)

    assert f'action="{SUBMIT}"' in _content(client.get(PAGE))
    response = client.post(SUBMIT, submission_form())

    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.registered_by_id == staff_user.pk
    upload = client.post(responses_url(submission), {"file": responses_file(("p0",))})
    assert upload.status_code == 302
    assert Response.objects.filter(system=submission.system).count() == 1


def test_a_rater_is_refused_the_client_area(client, arena, gamma, rater):
    client.force_login(rater)
    assert client.get(PAGE).status_code == 403


def test_anonymous_is_sent_to_log_in(client, arena, gamma):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_the_organization_page_links_the_provider_page_only_for_a_provider(
    client, gamma, provider_owner, other_organization
):
    client.force_login(provider_owner)
    assert PAGE in _content(client.get("/client/orgs/gamma-ai/"))

    staff = UserFactory(account_type=AccountType.CLIENT, is_staff=True)
    client.force_login(staff)
    assert "/provider/" not in _content(client.get("/client/orgs/beta-lab/"))


# --- Responses ----------------------------------------------------------------------------------


def test_the_responses_page_lists_the_prompts_still_to_answer(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    services.submission_responses_upload(
        submission=submission, actor=provider_member, data=b'{"prompt_id": "p1", "response": "x"}\n'
    )
    client.force_login(provider_member)

    response = client.get(responses_url(submission))

    assert response.status_code == 200
    page = _content(response)
    assert "<dd>1 uploaded; 2 prompts still without one</dd>" in page
    assert "<li><code>p0</code></li><li><code>p2</code></li>" in page  # gold0 is never answered
    assert "gold0" not in page
    example = '{"prompt_id": "p0", "response": "…"} {"prompt_id": "p2", "response": "…"}'
    assert escape(example) in page
    assert 'enctype="multipart/form-data"' in page


def test_the_missing_prompts_are_paginated(client, arena, gamma, provider_member, register, monkeypatch):
    monkeypatch.setattr(views_provider, "MISSING_PER_PAGE", 2)
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)

    first = _content(client.get(responses_url(submission)))
    second = _content(client.get(responses_url(submission) + "?page=2"))

    assert "<li><code>p0</code></li><li><code>p1</code></li>" in first
    assert "Page 1 of 2" in first
    assert "<li><code>p2</code></li>" in second
    assert "<code>p0</code>" not in second


def test_the_provider_uploads_responses(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)

    response = client.post(responses_url(submission), {"file": responses_file()})

    assert response.status_code == 302
    assert response.url == responses_url(submission)
    assert sorted(Response.objects.filter(system=submission.system).values_list("item__prompt_id", flat=True)) == [
        "p0",
        "p1",
        "p2",
    ]
    assert AuditEvent.objects.filter(action="integrity.responses_upload").count() == 1
    page = _content(client.get(response.url))
    assert "Added 3 responses, 6 new item pairs." in page  # 3 prompts x the 2 systems already there
    assert "Every prompt has a response" in page


def test_a_bad_responses_file_names_its_lines_and_adds_nothing(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)
    before = integrity_snapshot()

    response = client.post(
        responses_url(submission), {"file": responses_file(("p0", "p1"), {"prompt_id": "nope", "response": "x"})}
    )

    assert response.status_code == 400
    page = _content(response)
    assert "No responses were added." in page
    problem = "prompt_id &#x27;nope&#x27; is not in this study (upload it as a new item)"
    assert f'<tr><td class="num">3</td><td>{problem}</td></tr>' in page
    assert integrity_snapshot() == before


def test_an_upload_without_a_file_is_a_400(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)
    before = integrity_snapshot()

    response = client.post(responses_url(submission), {})

    assert response.status_code == 400
    assert "This field is required." in _content(response)
    assert integrity_snapshot() == before


def test_a_retired_submission_says_why_and_takes_no_responses(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-1")
    retired_at = timezone.now()
    Submission.objects.filter(pk=submission.pk).update(
        published_at=retired_at, retired_at=retired_at, retirement_rule="300 votes and 2 newer published systems"
    )
    client.force_login(provider_member)

    page = _content(client.get(responses_url(submission)))
    assert f"Retired on {retired_at:%Y-%m-%d}: it takes no new responses." in page
    assert "300 votes and 2 newer published systems" in page
    assert 'enctype="multipart/form-data"' not in page

    before = integrity_snapshot()
    response = client.post(responses_url(submission), {"file": responses_file()})
    assert response.status_code == 409
    assert "No responses were added: &#x27;gamma-1&#x27; is retired: it takes no new responses." in _content(response)
    assert integrity_snapshot() == before


# --- The prompts file ---------------------------------------------------------------------------

PROMPTS = "/client/orgs/gamma-ai/provider/leaderboards/open-arena/prompts.jsonl"


def test_the_provider_downloads_every_prompt_but_the_gold_ones(client, arena, gamma, provider_member):
    client.force_login(provider_member)
    response = client.get(PROMPTS)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl"
    assert response["Content-Disposition"] == 'attachment; filename="open-arena-prompts.jsonl"'
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines == [
        {"prompt_id": f"p{n}", "prompt": [{"role": "user", "content": f"Question {n}?"}]} for n in range(3)
    ]
    # The same rows the API pages through, for every provider alike.
    assert [line["prompt_id"] for line in lines] == [
        row["prompt_id"] for row in client.get("/api/v1/leaderboards/open-arena/prompts/").json()["results"]
    ]


def test_the_pages_link_the_prompts_file(client, arena, gamma, provider_member, register):
    submission = register(gamma, "gamma-next")
    client.force_login(provider_member)
    assert f'href="{PROMPTS}"' in client.get(PAGE).content.decode()
    assert f'href="{PROMPTS}"' in client.get(responses_url(submission)).content.decode()


@pytest.mark.parametrize("who", ["owner of a non-provider organization", "unknown leaderboard"])
def test_no_prompts_file_for_others(client, arena, gamma, owner, provider_member, who):
    if who.startswith("owner"):
        client.force_login(owner)
        url = "/client/orgs/alpha-lab/provider/leaderboards/open-arena/prompts.jsonl"
    else:
        client.force_login(provider_member)
        url = "/client/orgs/gamma-ai/provider/leaderboards/nope/prompts.jsonl"
    assert client.get(url).status_code == 404
