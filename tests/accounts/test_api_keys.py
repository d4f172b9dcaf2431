"""API key lifecycle: shown once, hashed at rest, works, revoked → 401, last-used updated."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from crowdplatform.accounts import services
from crowdplatform.accounts.models import ApiKey
from crowdplatform.accounts.services import api_key_revoke, api_key_use
from crowdplatform.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def keys_url(organization) -> str:
    return reverse("api:api-key-list", args=[organization.pk])


def test_owner_creates_a_key_through_the_api_and_sees_it_once(api_client, organization, owner):
    api_client.force_authenticate(owner)
    response = api_client.post(keys_url(organization), {"name": "nightly export"}, format="json")
    assert response.status_code == 201
    body = response.json()
    raw_key = body["key"]
    assert raw_key.startswith(f"cpk_{body['prefix']}_")
    assert len(raw_key) == len("cpk_") + 12 + 1 + 43
    assert body["name"] == "nightly export"
    assert body["created_by"] == owner.email
    assert body["last_used_at"] is None
    assert body["revoked_at"] is None

    stored = ApiKey.objects.get()
    assert stored.hashed_key == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key not in {str(value) for value in ApiKey.objects.values_list("prefix", "hashed_key", "name").get()}

    listing = api_client.get(keys_url(organization)).json()
    assert [item.get("key") for item in listing["results"]] == [None]
    assert AuditEvent.objects.filter(action="api_key.create").count() == 1


def test_the_key_authenticates_and_last_used_is_recorded(api_client, api_key_pair, organization):
    api_key, raw_key = api_key_pair
    assert api_key.last_used_at is None
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = api_client.get(reverse("api:me"))
    assert response.status_code == 200
    assert response.json() == {
        "kind": "api_key",
        "email": None,
        "account_type": None,
        "is_staff": False,
        "organization": {
            "id": organization.pk,
            "name": "Alpha Lab",
            "slug": "alpha-lab",
            "created_at": organization.created_at.isoformat().replace("+00:00", "Z"),
        },
    }
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < timedelta(seconds=5)


def test_last_used_is_written_at_most_once_a_minute(api_key_pair):
    api_key, raw_key = api_key_pair
    earlier = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=earlier)
    api_key_use(raw_key=raw_key)
    api_key.refresh_from_db()
    assert api_key.last_used_at == earlier

    stale = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=stale)
    api_key_use(raw_key=raw_key)
    api_key.refresh_from_db()
    assert api_key.last_used_at > stale


def test_revoked_key_gets_401(api_client, api_key_pair, owner):
    api_key, raw_key = api_key_pair
    api_key_revoke(api_key=api_key, actor=owner)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = api_client.get(reverse("api:me"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {
        "error": {
            "status": 401,
            "code": "authentication_failed",
            "message": "Invalid or revoked API key.",
            "fields": {},
        }
    }


def test_owner_revokes_through_the_api(api_client, api_key_pair, organization, owner):
    api_key, _ = api_key_pair
    api_client.force_authenticate(owner)
    response = api_client.delete(reverse("api:api-key-detail", args=[organization.pk, api_key.pk]))
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    api_key.refresh_from_db()
    assert api_key.revoked_by == owner
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(api_key.pk)).count() == 1

    again = api_client.delete(reverse("api:api-key-detail", args=[organization.pk, api_key.pk]))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_revoked"
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1


@pytest.mark.parametrize(
    "header",
    ["Bearer cpk_000000000000_wrongsecret", "Bearer not-a-key", "Bearer", "Bearer a b", "Bearer cpk_short"],
)
def test_malformed_or_unknown_keys_get_401(api_client, api_key_pair, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.get(reverse("api:me"))
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401


def test_a_right_prefix_with_a_wrong_secret_is_refused(api_client, api_key_pair):
    api_key, raw_key = api_key_pair
    forged = raw_key[: len("cpk_") + 13] + "x" * 43
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert api_client.get(reverse("api:me")).status_code == 401
    api_key.refresh_from_db()
    assert api_key.last_used_at is None


def test_members_and_keys_cannot_create_or_revoke_keys(api_client, api_key_pair, organization, member):
    api_key, raw_key = api_key_pair
    api_client.force_authenticate(member)
    response = api_client.post(keys_url(organization), {"name": "sneaky"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"

    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert api_client.post(keys_url(organization), {"name": "sneaky"}, format="json").status_code == 403
    assert api_client.delete(reverse("api:api-key-detail", args=[organization.pk, api_key.pk])).status_code == 403
    assert ApiKey.objects.count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_key_creation_needs_a_name(api_client, organization, owner):
    api_client.force_authenticate(owner)
    response = api_client.post(keys_url(organization), {"name": ""}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "status": 400,
            "code": "invalid",
            "message": "The input is not valid; see fields.",
            "fields": {"name": ["This field may not be blank."]},
        }
    }
    assert ApiKey.objects.count() == 0


def test_key_created_on_the_web_page_is_shown_exactly_once(client, organization, owner):
    client.force_login(owner)
    response = client.post(reverse("client:api_key_create", args=[organization.slug]), {"name": "notebook"})
    assert response["Location"] == reverse("client:organization", args=[organization.slug])
    first = client.get(response["Location"]).text
    raw_key = first.split('id="new-api-key">')[1].split("<")[0]
    assert raw_key.startswith("cpk_")
    assert ApiKey.objects.get().hashed_key == hashlib.sha256(raw_key.encode()).hexdigest()
    second = client.get(reverse("client:organization", args=[organization.slug])).text
    assert raw_key not in second
    assert "notebook" in second


def test_key_revoked_on_the_web_page(client, api_key_pair, organization, owner):
    api_key, _ = api_key_pair
    client.force_login(owner)
    client.post(reverse("client:api_key_revoke", args=[organization.slug, api_key.pk]))
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_a_member_cannot_create_keys_on_the_web_page(client, organization, member):
    client.force_login(member)
    response = client.post(reverse("client:api_key_create", args=[organization.slug]), {"name": "x"})
    assert response.status_code == 403
    assert ApiKey.objects.count() == 0


@given(st.text(max_size=80))
def test_any_bearer_string_is_either_a_well_formed_key_id_or_refused(raw):
    key_id = services._api_key_id(raw)
    if key_id is not None:
        assert raw.startswith("cpk_")
        assert len(key_id) == 12
        assert raw[16] == "_"
