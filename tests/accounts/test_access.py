"""The access helpers, and that pages and API endpoints go through them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from crowdplatform.accounts.access import (
    can_manage_organization,
    can_view_organization,
    home_url_for,
    may_enter_area,
    organization_for,
    organization_role,
    organizations_visible_to,
)
from crowdplatform.accounts.principals import ApiKeyPrincipal

pytestmark = pytest.mark.django_db


def test_visibility_by_kind_of_actor(organization, other_organization, owner, member, staff_user, api_key_pair):
    api_key, _ = api_key_pair
    assert list(organizations_visible_to(owner)) == [organization]
    assert list(organizations_visible_to(member)) == [organization]
    assert list(organizations_visible_to(ApiKeyPrincipal(api_key))) == [organization]
    assert list(organizations_visible_to(staff_user).order_by("name")) == [organization, other_organization]
    assert list(organizations_visible_to(AnonymousUser())) == []
    assert list(organizations_visible_to(None)) == []


def test_roles_and_rights(organization, owner, member, rater, staff_user, api_key_pair):
    principal = ApiKeyPrincipal(api_key_pair[0])
    assert [organization_role(actor, organization) for actor in (owner, member, principal, rater, staff_user)] == [
        "owner",
        "member",
        "member",
        None,
        None,
    ]
    assert [can_view_organization(a, organization) for a in (owner, member, principal, rater, staff_user)] == [
        True,
        True,
        True,
        False,
        True,
    ]
    assert [can_manage_organization(a, organization) for a in (owner, member, principal, rater, staff_user)] == [
        True,
        False,
        False,
        False,
        True,
    ]


def test_organization_for_hides_other_organizations(organization, other_organization, owner):
    assert organization_for(owner, pk=organization.pk) == organization
    with pytest.raises(Http404):
        organization_for(owner, pk=other_organization.pk)
    with pytest.raises(Http404):
        organization_for(owner, slug="no-such-lab")


def test_organization_for_manage_refuses_members(organization, member):
    with pytest.raises(PermissionDenied):
        organization_for(member, pk=organization.pk, manage=True)


def test_areas(rater, owner, staff_user):
    assert [may_enter_area(rater, area) for area in ("rater", "client", "staff")] == [True, False, False]
    assert [may_enter_area(owner, area) for area in ("rater", "client", "staff")] == [False, True, False]
    assert [may_enter_area(staff_user, area) for area in ("rater", "client", "staff")] == [True, True, True]
    assert [home_url_for(user) for user in (rater, owner, staff_user)] == ["/rater/", "/client/", "/staff/"]


# --- Through the pages ----------------------------------------------------------------------------


def test_a_member_of_a_gets_404_for_b_pages(client, owner, other_organization, other_owner):
    client.force_login(owner)
    assert client.get(reverse("client:organization", args=[other_organization.slug])).status_code == 404
    response = client.post(reverse("client:api_key_create", args=[other_organization.slug]), {"name": "x"})
    assert response.status_code == 404
    assert other_organization.api_keys.count() == 0


def test_wrong_area_is_forbidden_with_a_reason(client, rater, owner):
    client.force_login(rater)
    response = client.get(reverse("client:home"))
    assert response.status_code == 403
    assert "This part of the site is for lab clients." in response.text
    assert client.get(reverse("staff:dashboard")).status_code == 403
    client.force_login(owner)
    assert client.get(reverse("rater:home")).status_code == 403


@pytest.mark.parametrize("url_name", ["client:home", "rater:home", "staff:dashboard", "staff:audit_log"])
def test_anonymous_pages_redirect_to_login(client, url_name):
    response = client.get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={reverse(url_name)}"


# --- Through the API ------------------------------------------------------------------------------


def test_a_member_of_a_gets_404_for_b_through_the_api(api_client, owner, other_organization, other_owner):
    api_client.force_authenticate(owner)
    for url in (
        reverse("api:organization-detail", args=[other_organization.pk]),
        reverse("api:member-list", args=[other_organization.pk]),
        reverse("api:api-key-list", args=[other_organization.pk]),
    ):
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json() == {
            "error": {"status": 404, "code": "not_found", "message": "No such organization.", "fields": {}}
        }


def test_an_api_key_of_a_gets_404_for_b(api_client, api_key_pair, other_organization):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    assert api_client.get(reverse("api:organization-detail", args=[other_organization.pk])).status_code == 404
    listing = api_client.get(reverse("api:organization-list")).json()
    assert [item["slug"] for item in listing["results"]] == ["alpha-lab"]


@pytest.mark.parametrize(
    "url", ["/api/v1/me/", "/api/v1/organizations/", "/api/v1/organizations/1/", "/api/v1/audit-events/"]
)
def test_anonymous_gets_401_on_the_api(api_client, url):
    response = api_client.get(url)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "status": 401,
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
            "fields": {},
        }
    }
