"""Sign-up → email verification → login, for each kind of user, and where each lands."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from crowdplatform.accounts.models import AccountType, Membership, Organization, Role, User
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import RaterProfile
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-unusual-passphrase-42"


def sign_up(client, email, account_type, organization_name=""):
    return client.post(
        reverse("account_signup"),
        {
            "email": email,
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "account_type": account_type,
            "organization_name": organization_name,
        },
    )


def confirmation_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def verify_by_email(client) -> None:
    assert len(mail.outbox) == 1
    link = confirmation_link(mail.outbox[0])
    assert client.get(link).status_code == 200  # the confirmation page
    response = client.post(link)
    assert response.status_code == 302


def log_in(client, email, password=NEW_PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_rater_signs_up_verifies_and_lands_in_the_rater_portal(client):
    response = sign_up(client, "Ada@Example.org", AccountType.RATER, organization_name="ignored for raters")
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")

    user = User.objects.get(email="ada@example.org")
    assert user.account_type == AccountType.RATER
    assert RaterProfile.objects.filter(user=user).count() == 1
    assert Organization.objects.count() == 0
    assert EmailAddress.objects.get(user=user).verified is False

    # Unverified, the account cannot log in yet: it is sent back to "check your email".
    client.logout()
    response = log_in(client, "ada@example.org")
    assert response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session

    verify_by_email(client)
    assert EmailAddress.objects.get(user=user).verified is True

    client.logout()
    response = log_in(client, "ada@example.org")
    assert response.status_code == 302
    assert response["Location"] == reverse("rater:home")
    assert client.get(reverse("rater:home")).status_code == 200
    assert list(AuditEvent.objects.filter(actor_user=user).values_list("action", flat=True).order_by("id")) == [
        "user.signup",
        "rater_profile.create",
    ]


def test_client_signs_up_with_an_organization_and_lands_in_the_client_portal(client):
    sign_up(client, "lead@lab.example", AccountType.CLIENT, organization_name="Frontier Lab")
    user = User.objects.get(email="lead@lab.example")
    assert user.account_type == AccountType.CLIENT
    assert RaterProfile.objects.count() == 0
    organization = Organization.objects.get()
    assert (organization.name, organization.slug) == ("Frontier Lab", "frontier-lab")
    assert Membership.objects.get().role == Role.OWNER

    verify_by_email(client)
    client.logout()
    response = log_in(client, "lead@lab.example")
    assert response["Location"] == reverse("client:home")
    page = client.get(reverse("client:home"))
    assert page.status_code == 200
    assert "Frontier Lab" in page.text


def test_client_without_organization_sees_the_empty_state(client):
    sign_up(client, "new@lab.example", AccountType.CLIENT)
    assert Organization.objects.count() == 0
    verify_by_email(client)
    client.logout()
    log_in(client, "new@lab.example")
    page = client.get(reverse("client:home"))
    assert "You are not in an organization yet" in page.text


def test_verification_link_logs_the_user_in_and_lands_them(client):
    sign_up(client, "fast@example.org", AccountType.RATER)
    link = confirmation_link(mail.outbox[0])
    response = client.post(link, follow=True)
    assert response.redirect_chain[-1] == (reverse("rater:home"), 302)
    assert response.status_code == 200


def test_staff_logs_in_and_lands_in_the_staff_console(client):
    UserFactory(email="ops@example.org", is_staff=True)
    response = log_in(client, "ops@example.org", PASSWORD)
    assert response["Location"] == reverse("staff:dashboard")
    assert client.get(reverse("staff:dashboard")).status_code == 200


def test_sign_up_with_a_taken_email_changes_nothing_and_reveals_nothing(client):
    UserFactory(email="taken@example.org")
    users_before = User.objects.count()
    response = sign_up(client, "TAKEN@example.org", AccountType.RATER)
    # The page looks like any sign-up (no account enumeration); the owner is told by email.
    assert response["Location"] == reverse("account_email_verification_sent")
    assert User.objects.count() == users_before
    assert AuditEvent.objects.count() == 0
    assert [message.to for message in mail.outbox] == [["taken@example.org"]]


def test_sign_up_with_a_weak_password_changes_nothing(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "weak@example.org", "password1": "123", "password2": "123", "account_type": AccountType.RATER},
    )
    assert response.status_code == 200
    assert User.objects.count() == 0
    assert len(mail.outbox) == 0


def test_password_reset_sends_a_link(client):
    UserFactory(email="forgot@example.org")
    response = client.post(reverse("account_reset_password"), {"email": "forgot@example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_failed_logins_are_rate_limited(client):
    UserFactory(email="target@example.org")
    pages = [log_in(client, "target@example.org", "wrong-password").text for _ in range(6)]
    assert ["Too many failed login attempts" in page for page in pages] == [False] * 5 + [True]
