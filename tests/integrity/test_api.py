"""The public leaderboards' API: leaderboards and submissions (read by anyone), submitting and uploading
responses (staff and the provider's own organization only)."""

from __future__ import annotations

import json

import pytest

from crowdplatform.accounts.models import Role
from crowdplatform.accounts.services import api_key_create
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity.models import LicenseClass, Provider, Submission
from evaluations.models import Item, ItemPair, Response
from tests.factories import MembershipFactory, OrganizationFactory
from tests.integrity.conftest import integrity_snapshot

pytestmark = pytest.mark.django_db

SUBMISSIONS = "/api/v1/leaderboards/open-arena/submissions/"


def _submission(provider_slug: str = "gamma-ai", name: str = "gamma-next", prerelease: bool = False) -> dict:
    return {"provider": provider_slug, "name": name, "license_class": "proprietary", "prerelease": prerelease}


def _responses(count: int = 3) -> bytes:
    return b"".join(
        json.dumps({"prompt_id": f"p{n}", "response": f"gamma answers {n}"}).encode() + b"\n" for n in range(count)
    )


def test_anyone_lists_the_leaderboards_with_their_rules(leaderboard, api_client):
    body = api_client.get("/api/v1/leaderboards/").json()
    assert body == [
        {
            "slug": "open-arena",
            "name": "Open Arena",
            "description": "",
            "study": leaderboard.study_id,
            "starts_at": "2026-01-01T00:00:00Z",
            "period_days": 30,
            "prerelease_cap": 2,
            "window_days": 14,
            "provisional_votes": 100,
            "retire_after_votes": 300,
            "retire_newer_required": 2,
            "policy_version": 1,
        }
    ]


def test_anyone_lists_every_submission_pre_release_variants_included(providers, submit, api_client):
    submit(providers[LicenseClass.PROPRIETARY], "gamma-1")
    submit(providers[LicenseClass.PROPRIETARY], "codename-x", prerelease=True)
    body = api_client.get(SUBMISSIONS).json()
    assert [(row["system"], row["provider"], row["prerelease"]) for row in body] == [
        ("gamma-1", "gamma-ai", False),
        ("codename-x", "gamma-ai", True),
    ]


def test_the_providers_member_submits_a_system(providers, leaderboard, provider_member, api_client):
    api_client.force_authenticate(provider_member)
    response = api_client.post(SUBMISSIONS, _submission(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    submission = Submission.objects.get()
    assert (body["id"], body["system"], body["provider"], body["license_class"]) == (
        submission.pk,
        "gamma-next",
        "gamma-ai",
        "proprietary",
    )
    assert body["published_at"] is None
    assert AuditEvent.objects.filter(action="integrity.submission_register").count() == 1


@pytest.mark.parametrize("who", ["anonymous", "other organization"])
def test_others_cannot_submit_and_nothing_changes(providers, leaderboard, owner, api_client, who):
    if who == "other organization":
        api_client.force_authenticate(owner)
    before = integrity_snapshot()
    response = api_client.post(SUBMISSIONS, _submission(), format="json")
    assert response.status_code == (401 if who == "anonymous" else 403)
    assert integrity_snapshot() == before


def test_the_cap_is_refused_over_the_api_with_nothing_changed(providers, leaderboard, provider_member, api_client):
    api_client.force_authenticate(provider_member)
    for name in ("variant-1", "variant-2"):
        assert api_client.post(SUBMISSIONS, _submission(name=name, prerelease=True), format="json").status_code == 201
    before = integrity_snapshot()
    response = api_client.post(SUBMISSIONS, _submission(name="variant-3", prerelease=True), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "prerelease_cap_reached"
    assert integrity_snapshot() == before


def test_an_unknown_license_class_is_a_400_naming_the_field(providers, leaderboard, provider_member, api_client):
    api_client.force_authenticate(provider_member)
    before = integrity_snapshot()
    response = api_client.post(SUBMISSIONS, {**_submission(), "license_class": "shareware"}, format="json")
    assert response.status_code == 400
    assert "license_class" in response.json()["error"]["fields"]
    assert integrity_snapshot() == before


def test_the_provider_uploads_its_systems_responses(providers, submit, provider_member, api_client):
    submission = submit(providers[LicenseClass.PROPRIETARY], "gamma-next")
    pairs = ItemPair.objects.count()
    api_client.force_authenticate(provider_member)
    url = f"{SUBMISSIONS}{submission.pk}/responses/"
    response = api_client.post(url, _responses(), content_type="application/jsonl")
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 3, "item_pairs": 6}  # 3 prompts x the 2 systems already there
    assert Response.objects.filter(system=submission.system).count() == 3
    assert ItemPair.objects.count() == pairs + 6
    assert AuditEvent.objects.filter(action="integrity.responses_upload").count() == 1


def test_a_bad_responses_file_adds_nothing_and_names_the_lines(providers, submit, provider_member, api_client):
    submission = submit(providers[LicenseClass.PROPRIETARY], "gamma-next")
    api_client.force_authenticate(provider_member)
    before = integrity_snapshot()
    data = _responses(2) + b'{"prompt_id": "nope", "response": "x"}\n'
    response = api_client.post(f"{SUBMISSIONS}{submission.pk}/responses/", data, content_type="application/jsonl")
    assert response.status_code == 400
    assert [error["line"] for error in response.json()["errors"]] == [3]
    assert integrity_snapshot() == before


def test_others_cannot_upload_responses(providers, submit, owner, api_client):
    submission = submit(providers[LicenseClass.PROPRIETARY], "gamma-next")
    api_client.force_authenticate(owner)
    before = integrity_snapshot()
    response = api_client.post(
        f"{SUBMISSIONS}{submission.pk}/responses/", _responses(), content_type="application/jsonl"
    )
    assert response.status_code == 403
    assert integrity_snapshot() == before


# --- The prompts, for every provider alike -------------------------------------------------------

PROMPTS = "/api/v1/leaderboards/open-arena/prompts/"


@pytest.fixture
def gold_item(leaderboard):
    return Item.objects.create(
        study=leaderboard.study, prompt_id="gold-1", prompt=[], prompt_html="", is_gold=True, gold_answer="tie"
    )


def test_every_providers_organization_gets_every_prompt_alike(
    providers, leaderboard, provider_member, staff_user, gold_item, api_client
):
    # Open Weights Co becomes a client organization too; its API key reads what Gamma AI's member reads.
    weights = OrganizationFactory(name="Open Weights Co", slug="open-weights-co")
    Provider.objects.filter(pk=providers[LicenseClass.OPEN_WEIGHTS].pk).update(organization=weights)
    weights_owner = MembershipFactory(organization=weights, role=Role.OWNER).user
    other = api_key_create(organization=weights, name="script", actor=weights_owner)[1]
    bodies = []
    for authenticate in (
        lambda: api_client.force_authenticate(provider_member),
        lambda: api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}"),
        lambda: api_client.force_authenticate(staff_user),
    ):
        api_client.force_authenticate(None)
        api_client.credentials()
        authenticate()
        response = api_client.get(PROMPTS)
        assert response.status_code == 200, response.content
        bodies.append(response.json())
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["next"] is None
    assert bodies[0]["results"] == [
        {
            "prompt_id": f"p{n}",
            "prompt": [{"role": "user", "content": f"Question {n}?"}],
            "language": "",
            "category": "",
        }
        for n in range(3)  # in upload order; the gold check is not a prompt to answer
    ]


def test_the_prompts_come_in_pages_in_upload_order(providers, leaderboard, provider_member, api_client):
    api_client.force_authenticate(provider_member)
    first = api_client.get(PROMPTS, {"page_size": 2}).json()
    assert [row["prompt_id"] for row in first["results"]] == ["p0", "p1"]
    second = api_client.get(first["next"]).json()
    assert [row["prompt_id"] for row in second["results"]] == ["p2"]
    assert second["next"] is None


@pytest.mark.parametrize("who", ["anonymous", "a client that is no provider", "a rater"])
def test_nobody_else_reads_the_prompts(providers, leaderboard, owner, rater, api_client, who):
    if who != "anonymous":
        api_client.force_authenticate(owner if who.startswith("a client") else rater)
    response = api_client.get(PROMPTS)
    assert response.status_code == (401 if who == "anonymous" else 403)
    assert "results" not in response.json()


def test_an_unknown_leaderboard_has_no_prompts(providers, leaderboard, provider_member, api_client):
    api_client.force_authenticate(provider_member)
    assert api_client.get("/api/v1/leaderboards/nope/prompts/").status_code == 404
