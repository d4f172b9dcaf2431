from __future__ import annotations

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def test_schema_is_served_and_lists_the_api(client):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "crowdplatform API"
    assert {
        "/api/v1/me/",
        "/api/v1/organizations/",
        "/api/v1/organizations/{organization_id}/",
        "/api/v1/organizations/{organization_id}/members/",
        "/api/v1/organizations/{organization_id}/api-keys/",
        "/api/v1/organizations/{organization_id}/api-keys/{api_key_id}/",
        "/api/v1/audit-events/",
        "/api/v1/studies/",
        "/api/v1/studies/{study_id}/",
        "/api/v1/studies/{study_id}/systems/",
        "/api/v1/studies/{study_id}/items/",
        "/api/v1/studies/{study_id}/launch/",
        "/api/v1/studies/{study_id}/pause/",
        "/api/v1/studies/{study_id}/progress/",
        "/api/v1/studies/{study_id}/sampling-report/",
        "/api/v1/tasks/next/",
        "/api/v1/tasks/{task_id}/vote/",
        "/api/v1/tasks/{task_id}/skip/",
    } <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An organization API key: cpk_…",
    }


def test_schema_generates_without_warnings(capsys):
    SchemaGenerator().get_schema(request=None, public=True)
    captured = capsys.readouterr()
    assert "Warning" not in captured.err
    assert "Error" not in captured.err


def test_interactive_docs_load_nothing_from_the_internet(client):
    page = client.get(reverse("api-docs"))
    assert page.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page.text
    assert "cdn.jsdelivr" not in page.text
    assert "unpkg.com" not in page.text
