"""The client's study API: create, register systems, upload items, launch, pause, watch."""

from __future__ import annotations

import json

import pytest

from crowdplatform.core.models import AuditEvent
from evaluations.models import Item, ItemPair, Study, StudyStatus, System
from tests.money import fund

pytestmark = pytest.mark.django_db

STUDY = {
    "name": "Coding help",
    "description": "Which assistant helps engineers more.",
    "question": "Which response helps the user more?",
    "criteria": [{"name": "correctness", "definition": "The code runs and does what was asked."}],
    "votes_per_pair": 2,
    "pay_per_task_cents": 25,
    "est_seconds_per_task": 45,
    "sampling": "balanced",
    "gold_rate": 0.0,
    "requirements": {"languages": ["en"]},
}


def jsonl(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def item(n: int, systems=("alpha", "beta", "gamma")) -> dict:
    return {"prompt_id": f"p{n}", "prompt": f"Question {n}?", "responses": {s: f"{s} answers {n}" for s in systems}}


@pytest.fixture
def client_api(api_client, api_key_pair):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    return api_client


@pytest.fixture
def study_id(client_api) -> int:
    response = client_api.post("/api/v1/studies/", {**STUDY, "budget_cents": 10_000}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def register(client_api, study_id: int, *names: str) -> None:
    for name in names:
        response = client_api.post(f"/api/v1/studies/{study_id}/systems/", {"name": name, "provider": "Lab"})
        assert response.status_code == 201, response.json()


def upload(client_api, study_id: int, body: bytes, content_type: str = "application/jsonl"):
    return client_api.generic("POST", f"/api/v1/studies/{study_id}/items/", body, content_type=content_type)


def test_create_returns_the_study(client_api, organization):
    response = client_api.post("/api/v1/studies/", STUDY, format="json")

    assert response.status_code == 201
    body = response.json()
    study = Study.objects.get()
    assert body["id"] == study.pk
    assert body["organization"] == organization.pk
    assert body["status"] == "draft"
    assert body["criteria"] == STUDY["criteria"]
    assert body["implied_hourly_cents"] == 2000
    assert body["lease_seconds"] == 600
    assert AuditEvent.objects.filter(action="study.create", target_id=str(study.pk)).count() == 1


def test_create_refuses_pay_below_the_floor_and_keeps_nothing(client_api):
    response = client_api.post("/api/v1/studies/", {**STUDY, "pay_per_task_cents": 10}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["pay_per_task_cents"] == [
        "At 45 s per task this pays $8.00/h; the platform's floor is $15.00/h. Pay at least 19 cents per task."
    ]
    assert Study.objects.count() == 0


def test_create_refuses_missing_fields(client_api):
    response = client_api.post("/api/v1/studies/", {"name": "x"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"question", "criteria", "pay_per_task_cents"}
    assert Study.objects.count() == 0


def test_full_flow_create_fill_launch_watch(client_api, study_id):
    register(client_api, study_id, "alpha", "beta", "gamma")
    response = upload(client_api, study_id, jsonl(item(1), item(2)))
    assert response.status_code == 201
    assert response.json() == {"created": 2, "gold": 0, "item_pairs": 6}

    fund(Study.objects.get(pk=study_id).organization_id, 10_000_000)
    response = client_api.post(f"/api/v1/studies/{study_id}/launch/")
    assert response.status_code == 200
    assert response.json()["status"] == "live"

    progress = client_api.get(f"/api/v1/studies/{study_id}/progress/").json()
    assert progress["votes"] == 0
    assert progress["target_votes"] == 12
    assert progress["systems"] == [
        {"name": "alpha", "votes": 0},
        {"name": "beta", "votes": 0},
        {"name": "gamma", "votes": 0},
    ]
    assert progress["criteria"] == [{"name": "correctness", "votes": 0, "a": 0, "b": 0, "tie": 0, "both_bad": 0}]
    assert progress["completion"] == 0.0
    assert progress["eta_seconds"] is None

    assert client_api.post(f"/api/v1/studies/{study_id}/pause/").json()["status"] == "paused"
    assert client_api.post(f"/api/v1/studies/{study_id}/resume/").json()["status"] == "live"


def test_upload_errors_are_line_numbered_and_nothing_is_added(client_api, study_id):
    register(client_api, study_id, "alpha", "beta")
    body = jsonl(item(1, ("alpha", "beta")), item(2, ("alpha", "delta"))) + b"{not json\n"

    response = upload(client_api, study_id, body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["line"] for error in errors] == [2, 2, 3]
    assert "unknown system 'delta'" in errors[0]["error"]
    assert Item.objects.count() == 0
    assert ItemPair.objects.count() == 0


def test_upload_csv(client_api, study_id):
    register(client_api, study_id, "alpha", "beta")
    body = b"prompt_id,prompt,language,response:alpha,response:beta\np1,Hello?,en,Hi,Hey\n"

    response = upload(client_api, study_id, body, content_type="text/csv")

    assert response.status_code == 201
    assert response.json() == {"created": 1, "gold": 0, "item_pairs": 1}
    assert Item.objects.get().language == "en"


def test_upload_multipart_file(client_api, study_id):
    from django.core.files.uploadedfile import SimpleUploadedFile

    register(client_api, study_id, "alpha", "beta")
    upload_file = SimpleUploadedFile("items.jsonl", jsonl(item(1, ("alpha", "beta"))), "application/octet-stream")

    response = client_api.post(f"/api/v1/studies/{study_id}/items/", {"file": upload_file}, format="multipart")

    assert response.status_code == 201
    assert response.json()["created"] == 1


def test_items_list_is_paginated(client_api, study_id):
    register(client_api, study_id, "alpha", "beta")
    upload(client_api, study_id, jsonl(*(item(n, ("alpha", "beta")) for n in range(3))))

    body = client_api.get(f"/api/v1/studies/{study_id}/items/").json()

    assert [row["prompt_id"] for row in body["results"]] == ["p2", "p1", "p0"]
    assert body["results"][0]["responses"] == 2


def test_launch_refused_until_ready(client_api, study_id):
    response = client_api.post(f"/api/v1/studies/{study_id}/launch/")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_ready"
    assert "Register at least two systems." in response.json()["error"]["message"]
    assert Study.objects.get().status == StudyStatus.DRAFT


def test_invalid_transition_is_409(client_api, study_id):
    response = client_api.post(f"/api/v1/studies/{study_id}/pause/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    assert Study.objects.get().status == StudyStatus.DRAFT


def test_patch_draft_and_budget(client_api, study_id):
    response = client_api.patch(f"/api/v1/studies/{study_id}/", {"name": "Renamed", "votes_per_pair": 3}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["votes_per_pair"]) == ("Renamed", 3)

    response = client_api.patch(f"/api/v1/studies/{study_id}/", {"budget_cents": 500}, format="json")
    assert response.json()["budget_cents"] == 500


def test_system_rename_refused_after_votes(client_api, study_id):
    register(client_api, study_id, "alpha")
    system = System.objects.get()
    System.objects.filter(pk=system.pk).update(votes_count=1)

    url = f"/api/v1/studies/{study_id}/systems/{system.pk}/"
    assert client_api.patch(url, {"name": "renamed"}, format="json").status_code == 409
    assert client_api.delete(url).status_code == 409
    system.refresh_from_db()
    assert system.name == "alpha"


def test_system_delete_before_votes(client_api, study_id):
    register(client_api, study_id, "alpha")
    system = System.objects.get()

    assert client_api.delete(f"/api/v1/studies/{study_id}/systems/{system.pk}/").status_code == 204
    assert System.objects.count() == 0
    assert AuditEvent.objects.filter(action="system.delete").count() == 1


def test_duplicate_system_is_409(client_api, study_id):
    register(client_api, study_id, "alpha")

    response = client_api.post(f"/api/v1/studies/{study_id}/systems/", {"name": "alpha"})

    assert response.status_code == 409
    assert System.objects.count() == 1


def test_other_organizations_study_is_404(api_client, study_id, other_owner):
    api_client.force_authenticate(other_owner)

    for path in ("", "systems/", "items/", "progress/", "sampling-report/"):
        assert api_client.get(f"/api/v1/studies/{study_id}/{path}").status_code == 404
    assert api_client.post(f"/api/v1/studies/{study_id}/launch/").status_code == 404
    assert api_client.get("/api/v1/studies/").json()["results"] == []


def test_raters_cannot_create_studies(api_client, rater):
    api_client.force_authenticate(rater)

    response = api_client.post("/api/v1/studies/", STUDY, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"organization": ["Say which organization the study belongs to."]}
    assert Study.objects.count() == 0


def test_sampling_report_shape(client_api, study_id):
    body = client_api.get(f"/api/v1/studies/{study_id}/sampling-report/").json()

    assert body == {"policy": "balanced", "battles": 0, "votes": 0, "systems": [], "pairs": [], "days": []}
