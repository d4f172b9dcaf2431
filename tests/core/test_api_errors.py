"""Every API error has the same JSON shape."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from crowdplatform.accounts.services import api_key_create
from crowdplatform.core.throttling import ActorRateThrottle

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls")]


def error(status, code, message, fields=None):
    return {"error": {"status": status, "code": code, "message": message, "fields": fields or {}}}


def test_unknown_api_url_is_a_json_404(api_client, owner):
    api_client.force_authenticate(owner)
    response = api_client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == error(404, "not_found", "Not found.")


def test_method_not_allowed(api_client, owner):
    api_client.force_authenticate(owner)
    response = api_client.put("/api/v1/me/")
    assert response.status_code == 405
    assert response.json() == error(405, "method_not_allowed", 'Method "PUT" not allowed.')


def test_domain_conflict_becomes_409_with_its_code():
    response = APIClient().get("/api/v1/test-conflict/")
    assert response.status_code == 409
    assert response.json() == error(409, "study_live", "The study is live; pause it first.")


def test_malformed_json_is_a_400(api_client):
    response = api_client.post("/api/v1/test-conflict/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert response.json()["error"]["status"] == 400


def test_csrf_failure_for_session_users_is_a_403_in_the_same_shape(owner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/v1/organizations/1/api-keys/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in response.json()["error"]["message"]


def test_server_error_is_json_under_api_and_a_page_elsewhere():
    client = Client(raise_request_exception=False)
    api = client.get("/api/v1/test-crash/")
    assert api.status_code == 500
    assert api.json() == error(500, "server_error", "Server error. It has been logged.")
    page = client.get("/test-crash/")
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")


def actor_rate(monkeypatch, rate):
    monkeypatch.setattr(ActorRateThrottle, "THROTTLE_RATES", {**ActorRateThrottle.THROTTLE_RATES, "actor": rate})


def test_throttled_requests_get_429_with_retry_after(api_client, owner, monkeypatch):
    actor_rate(monkeypatch, "2/minute")
    api_client.force_authenticate(owner)
    statuses = [api_client.get("/api/v1/me/").status_code for _ in range(3)]
    response = api_client.get("/api/v1/me/")
    assert statuses == [200, 200, 429]
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert body["fields"]["retry_after"] == [response["Retry-After"]]


def test_each_api_key_has_its_own_budget(api_client, organization, owner, monkeypatch):
    _, first = api_key_create(organization=organization, name="a", actor=owner)
    _, second = api_key_create(organization=organization, name="b", actor=owner)
    actor_rate(monkeypatch, "1/minute")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {first}")
    first_statuses = [api_client.get("/api/v1/me/").status_code for _ in range(2)]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {second}")
    second_status = api_client.get("/api/v1/me/").status_code
    assert first_statuses == [200, 429]
    assert second_status == 200
