"""Pages render for each kind of user, with their empty states, and without JavaScript."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_landing_page_for_visitors(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "Human evaluation you can trust" in page.text
    assert reverse("account_signup") in page.text
    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page.text


def test_logged_in_users_are_sent_from_home_to_their_area(client, rater, owner, staff_user):
    for user, area in [(rater, "/rater/"), (owner, "/client/"), (staff_user, "/staff/")]:
        client.force_login(user)
        assert client.get("/")["Location"] == area


def test_rater_portal_shows_empty_states(client, rater):
    client.force_login(rater)
    page = client.get(reverse("rater:home"))
    assert page.status_code == 200
    for text in ("No tasks available", "No qualifications yet", "Nothing earned yet"):
        assert text in page.text


def test_organization_page_for_owner_and_member(client, organization, owner, member):
    client.force_login(owner)
    page = client.get(reverse("client:organization", args=[organization.slug]))
    assert page.status_code == 200
    assert "No studies yet" in page.text
    assert "Invite someone" in page.text
    assert "No API keys" in page.text
    client.force_login(member)
    page = client.get(reverse("client:organization", args=[organization.slug]))
    assert "You are member of this organization." in page.text
    assert "Invite someone" not in page.text
    assert reverse("client:api_key_create", args=[organization.slug]) not in page.text


def test_organization_created_from_the_client_portal(client, owner):
    client.force_login(owner)
    response = client.post(reverse("client:organization_create"), {"name": "Second Lab"})
    assert response["Location"] == reverse("client:organization", args=["second-lab"])
    page = client.get(response["Location"])
    assert "Created Second Lab. You are its owner." in page.text


def test_staff_dashboard_counts(client, staff_user, organization, owner, rater):
    client.force_login(staff_user)
    page = client.get(reverse("staff:dashboard"))
    assert page.status_code == 200
    assert (page.context["raters"], page.context["clients"], page.context["organizations"]) == (1, 1, 1)


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"])
def test_account_pages_use_the_site_layout(client, url):
    page = client.get(url)
    assert page.status_code == 200
    assert 'class="site-header"' in page.text
    assert "Menu:" not in page.text


def test_sign_up_form_offers_both_kinds_of_account(client):
    page = client.get("/accounts/signup/")
    assert 'name="account_type"' in page.text
    assert 'value="rater"' in page.text
    assert 'value="client"' in page.text
    assert 'name="organization_name"' in page.text


def test_unknown_page_is_a_friendly_404(client):
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_django_admin_is_available_to_staff_only(client, staff_user, owner):
    client.force_login(owner)
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/core/auditevent/").status_code == 200
