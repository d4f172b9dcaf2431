"""Demo accounts: a staff admin, a lab client with an organization and an API key, raters.

Idempotent: what exists is reused, and the credentials written last time are
reused while they still work, so `make run` prints the same ones each time.
Only a credential that no longer works (or was never written) is replaced.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction

from crowdplatform.accounts import services
from crowdplatform.accounts.models import AccountType, Organization, Role, User
from crowdplatform.raters.demo import RATER_STAGES, demo_raters_ensure

ADMIN_EMAIL = "admin@example.com"
CLIENT_EMAIL = "client@example.com"
RATER_EMAILS = list(RATER_STAGES)
ORGANIZATION_NAME = "Demo Lab"
API_KEY_NAME = "Demo key"


def _random_password() -> str:
    return secrets.token_urlsafe(12)


def _ensure_user(
    email: str, stored_password: str | None, *, account_type: str, is_staff: bool = False
) -> dict[str, str]:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        password = stored_password or _random_password()
        services.user_create(
            email=email,
            password=password,
            account_type=account_type,
            is_staff=is_staff,
            email_verified=True,
            actor=None,
        )
    elif stored_password and user.check_password(stored_password):
        password = stored_password
    else:
        password = _random_password()
        services.user_set_password(user=user, password=password, actor=None)
    return {"email": email, "password": password}


def _ensure_organization(owner: User) -> Organization:
    organization = Organization.objects.filter(
        name=ORGANIZATION_NAME, memberships__user=owner, memberships__role=Role.OWNER
    ).first()
    return organization or services.organization_create(name=ORGANIZATION_NAME, owner=owner, actor=None)


def _ensure_api_key(organization: Organization, owner: User, stored_key: str | None) -> str:
    if stored_key:
        api_key = services.api_key_matching(stored_key)
        if api_key is not None and api_key.organization_id == organization.pk:
            return stored_key
    for lost in organization.api_keys.filter(name=API_KEY_NAME, revoked_at__isnull=True):
        services.api_key_revoke(api_key=lost, actor=None)  # its plaintext is gone: replace it
    _, raw_key = services.api_key_create(organization=organization, name=API_KEY_NAME, actor=owner)
    return raw_key


@transaction.atomic
def demo_accounts_ensure(stored: dict[str, Any]) -> dict[str, Any]:
    """Create what is missing and return the credentials in the seed_demo JSON shape."""
    stored_client = stored.get("client", {})
    stored_raters = {rater.get("email"): rater.get("password") for rater in stored.get("raters", [])}
    admin = _ensure_user(
        ADMIN_EMAIL, stored.get("admin", {}).get("password"), account_type=AccountType.CLIENT, is_staff=True
    )
    client = _ensure_user(CLIENT_EMAIL, stored_client.get("password"), account_type=AccountType.CLIENT)
    owner = User.objects.get(email=CLIENT_EMAIL)
    organization = _ensure_organization(owner)
    raw_key = _ensure_api_key(organization, owner, stored_client.get("api_key"))
    raters = [_ensure_user(email, stored_raters.get(email), account_type=AccountType.RATER) for email in RATER_EMAILS]
    demo_raters_ensure(reviewer=User.objects.get(email=ADMIN_EMAIL))
    return {
        "admin": admin,
        "client": {**client, "organization": organization.name, "organization_id": organization.pk, "api_key": raw_key},
        "raters": raters,
    }
