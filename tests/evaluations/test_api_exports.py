"""The export API: GET /studies/{id}/votes.{jsonl,csv,parquet} and /studies/{id}/exports/ (jobs)."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from crowdplatform.core.models import AuditEvent
from evaluations.models import ExportJob
from tests.evaluations.test_exports import COLUMNS, build_exported_study, expected_rows, export_bytes

pytestmark = pytest.mark.django_db

MEDIA_TYPES = {
    "jsonl": "application/jsonl; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    private = settings.STORAGES["private"]
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**private, "OPTIONS": {**private["OPTIONS"], "location": str(tmp_path / "private")}},
    }


@pytest.fixture
def exported(make_study, add_systems, upload, make_rater, owner):
    return build_exported_study(make_study, add_systems, upload, make_rater, owner)


@pytest.fixture
def client_api(api_client, api_key_pair):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    return api_client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- Streamed exports ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "parquet"])
def test_each_format_streams_the_export_as_a_download(client_api, exported, export_format):
    study = exported.study

    response = client_api.get(f"/api/v1/studies/{study.pk}/votes.{export_format}?quality=all&gold=include")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == MEDIA_TYPES[export_format]
    assert response["Content-Disposition"] == f'attachment; filename="study-{study.pk}-votes.{export_format}"'
    assert response["Cache-Control"] == "no-store"
    assert body(response) == export_bytes(study, export_format, quality="all", gold="include")


def test_the_jsonl_rows_through_the_api(client_api, exported):
    response = client_api.get(f"/api/v1/studies/{exported.study.pk}/votes.jsonl")

    assert [json.loads(line) for line in body(response).splitlines()] == expected_rows(exported)[:4]


def test_filters_apply_through_the_api(client_api, exported):
    every = expected_rows(exported)
    url = f"/api/v1/studies/{exported.study.pk}/votes.jsonl"

    rows = [json.loads(line) for line in body(client_api.get(url, {"criterion": "helpfulness"})).splitlines()]
    after = body(client_api.get(url, {"after_id": exported.votes[2].pk, "since": "2025-03-01T12:00:00Z"}))

    assert rows == [{**every[0], "winner": "model_a"}, {**every[3], "winner": "model_b"}]
    assert [json.loads(line) for line in after.splitlines()] == [every[3]]


def test_the_csv_and_parquet_share_the_columns(client_api, exported):
    import pyarrow.parquet as pq

    csv_text = body(client_api.get(f"/api/v1/studies/{exported.study.pk}/votes.csv")).decode()
    table = pq.read_table(io.BytesIO(body(client_api.get(f"/api/v1/studies/{exported.study.pk}/votes.parquet"))))

    assert csv_text.splitlines()[0].split(",") == COLUMNS
    assert table.schema.names == COLUMNS
    assert table.num_rows == 4


def test_any_accept_header_gets_the_file(client_api, exported):
    response = client_api.get(f"/api/v1/studies/{exported.study.pk}/votes.csv", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert body(response) == export_bytes(exported.study, "csv")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("quality=best", "quality"),
        ("gold=maybe", "gold"),
        ("criterion=speed", "criterion"),
        ("since=yesterday", "since"),
        ("after_id=x", "after_id"),
        ("include=everything", "include"),
        ("gold=include&gold=only", "gold"),
        ("limit=5", "limit"),
    ],
)
def test_a_bad_filter_is_400_naming_it(client_api, exported, query, field):
    response = client_api.get(f"/api/v1/studies/{exported.study.pk}/votes.jsonl?{query}", HTTP_ACCEPT="text/csv")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid_filter")
    assert list(error["fields"]) == [field]
    assert field in error["message"]


def test_members_and_staff_may_export(api_client, exported, member, staff_user):
    for user in (member, staff_user):
        api_client.force_authenticate(user)
        assert api_client.get(f"/api/v1/studies/{exported.study.pk}/votes.jsonl").status_code == 200


def test_other_organizations_and_raters_get_404(api_client, exported, other_owner, rater):
    for user in (other_owner, rater, exported.votes[0].rater.user):
        api_client.force_authenticate(user)
        for export_format in ("jsonl", "csv", "parquet"):
            response = api_client.get(f"/api/v1/studies/{exported.study.pk}/votes.{export_format}")
            assert response.status_code == 404


def test_anonymous_is_401(api_client, exported):
    response = api_client.get(f"/api/v1/studies/{exported.study.pk}/votes.jsonl")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_missing_study_is_404(client_api):
    assert client_api.get("/api/v1/studies/999999/votes.jsonl").status_code == 404


# --- Export jobs ---------------------------------------------------------------------------------------------


def job_url(study_id: int, job_id: object = None, download: bool = False) -> str:
    if job_id is None:
        return f"/api/v1/studies/{study_id}/exports/"
    return f"/api/v1/studies/{study_id}/exports/{job_id}/" + ("download/" if download else "")


def test_post_prepares_a_file_and_answers_202(client_api, exported, django_capture_on_commit_callbacks):
    study = exported.study

    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post(job_url(study.pk), {"format": "csv", "quality": "all", "after_id": 0}, format="json")

    assert response.status_code == 202
    job = ExportJob.objects.get()
    data = response.json()
    assert data["id"] == str(job.pk)
    assert (data["study"], data["format"], data["filters"]) == (
        study.pk,
        "csv",
        {"quality": "all", "gold": "exclude"},
    )
    assert data["status"] == "queued"  # the answer is written before the job runs (after the commit)
    detail = client_api.get(job_url(study.pk, job.pk)).json()
    assert (detail["status"], detail["rows_done"], detail["rows_total"]) == ("done", 5, 5)
    assert detail["download_url"] == f"http://testserver{job_url(study.pk, job.pk, download=True)}"
    assert detail["sha256"] == job.sha256
    assert AuditEvent.objects.filter(action="export.create", target_id=str(job.pk)).count() == 1


def test_the_download_is_the_streamed_export(client_api, exported, django_capture_on_commit_callbacks):
    study = exported.study
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client_api.post(job_url(study.pk), {"format": "jsonl", "gold": "only"}, format="json").json()["id"]

    response = client_api.get(job_url(study.pk, job_id, download=True))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="study-{study.pk}-votes.jsonl"'
    assert b"".join(response.streaming_content) == export_bytes(study, "jsonl", gold="only")


def test_an_unfinished_job_has_no_download(client_api, exported, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job_id = client_api.post(job_url(exported.study.pk), {"format": "jsonl"}, format="json").json()["id"]

    detail = client_api.get(job_url(exported.study.pk, job_id)).json()

    assert (detail["status"], detail["download_url"], detail["rows_done"], detail["rows_total"]) == (
        "queued",
        None,
        0,
        None,
    )
    assert client_api.get(job_url(exported.study.pk, job_id, download=True)).status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({}, "format"),
        ({"format": "csv", "quality": "best"}, "quality"),
        ({"format": "csv", "since": "2025-03-02", "until": "2025-03-01"}, "until"),
        ({"format": "csv", "criterion": "speed"}, "criterion"),
        ({"format": "csv", "columns": ["winner"]}, "columns"),
    ],
)
def test_a_bad_job_is_400_and_creates_nothing(client_api, exported, payload, field):
    audit_before = AuditEvent.objects.count()

    response = client_api.post(job_url(exported.study.pk), payload, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert ExportJob.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


def test_jobs_are_listed_newest_first_and_paginated(client_api, exported, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        ids = [
            client_api.post(job_url(exported.study.pk), {"format": fmt}, format="json").json()["id"]
            for fmt in ("jsonl", "csv", "parquet")
        ]

    first = client_api.get(job_url(exported.study.pk), {"page_size": 2}).json()
    second = client_api.get(first["next"]).json()

    assert [job["id"] for job in first["results"] + second["results"]] == ids[::-1]
    assert second["next"] is None


def test_other_organizations_and_raters_see_no_jobs(
    api_client, client_api, exported, other_owner, rater, django_capture_on_commit_callbacks
):
    study = exported.study
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client_api.post(job_url(study.pk), {"format": "jsonl"}, format="json").json()["id"]

    for user in (other_owner, rater):
        api_client.force_authenticate(user)
        assert api_client.get(job_url(study.pk)).status_code == 404
        assert api_client.get(job_url(study.pk, job_id)).status_code == 404
        assert api_client.get(job_url(study.pk, job_id, download=True)).status_code == 404
        assert api_client.post(job_url(study.pk), {"format": "csv"}, format="json").status_code == 404
    assert ExportJob.objects.count() == 1


def test_a_job_of_another_study_is_404(client_api, exported, make_study, django_capture_on_commit_callbacks):
    other = make_study(name="Other study")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client_api.post(job_url(exported.study.pk), {"format": "jsonl"}, format="json").json()["id"]

    assert client_api.get(job_url(other.pk, job_id)).status_code == 404
    assert client_api.get(job_url(other.pk, job_id, download=True)).status_code == 404
    assert client_api.get(job_url(exported.study.pk, "00000000-0000-0000-0000-000000000000")).status_code == 404


def test_the_routes_are_the_public_contract(exported):
    study = exported.study.pk

    assert reverse("api:study-votes-jsonl", args=[study]) == f"/api/v1/studies/{study}/votes.jsonl"
    assert reverse("api:study-votes-csv", args=[study]) == f"/api/v1/studies/{study}/votes.csv"
    assert reverse("api:study-votes-parquet", args=[study]) == f"/api/v1/studies/{study}/votes.parquet"


def test_the_openapi_schema_documents_the_exports(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    jsonl = schema["paths"]["/api/v1/studies/{study_id}/votes.jsonl"]["get"]
    assert {parameter["name"] for parameter in jsonl["parameters"]} >= {
        "study_id",
        "quality",
        "since",
        "until",
        "criterion",
        "gold",
        "include",
        "after_id",
    }
    assert list(jsonl["responses"]["200"]["content"]) == ["application/jsonl"]
    parquet = schema["paths"]["/api/v1/studies/{study_id}/votes.parquet"]["get"]
    assert parquet["responses"]["200"]["content"]["application/vnd.apache.parquet"]["schema"]["format"] == "binary"
    assert {
        "/api/v1/studies/{study_id}/votes.csv",
        "/api/v1/studies/{study_id}/exports/",
        "/api/v1/studies/{study_id}/exports/{job_id}/",
        "/api/v1/studies/{study_id}/exports/{job_id}/download/",
    } <= set(schema["paths"])
    assert "202" in schema["paths"]["/api/v1/studies/{study_id}/exports/"]["post"]["responses"]
