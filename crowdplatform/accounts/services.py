"""Every change to users, organizations, memberships, invitations and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from crowdplatform.accounts.models import (
    AccountType,
    ApiKey,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from crowdplatform.accounts.principals import Actor
from crowdplatform.accounts.tasks import invitation_email_send
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.raters.services import rater_profile_create

API_KEY_PREFIX = "cpk_"
API_KEY_ID_LENGTH = 12  # hex characters between "cpk_" and the secret


# --- Sign-up ------------------------------------------------------------------------------------


@transaction.atomic
def user_signup_complete(*, user: User, account_type: str, organization_name: str = "") -> User:
    """Finish a sign-up: record what the user signed up as and set up that side.

    Raters get an (empty) rater profile; a client who named an organization
    becomes its owner.
    """
    if account_type not in AccountType.values:
        raise ApplicationError(f"Unknown account type {account_type!r}.", code="invalid_account_type")
    user.account_type = account_type
    user.save(update_fields=["account_type"])
    audit_record(actor=user, action="user.signup", target=user, data={"account_type": account_type})
    if account_type == AccountType.RATER:
        rater_profile_create(user=user, actor=user)
    elif organization_name.strip():
        organization_create(name=organization_name, owner=user, actor=user)
    return user


@transaction.atomic
def user_create(
    *,
    email: str,
    password: str | None,
    account_type: str,
    actor: Actor,
    is_staff: bool = False,
    email_verified: bool = False,
) -> User:
    """Create a user outside the sign-up flow (staff tooling, demo data). No password: none can log in."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ConflictError(f"A user with the address {email} exists.", code="email_taken")
    if is_staff:
        user = User.objects.create_superuser(email=email, password=password, account_type=account_type)
    else:
        user = User.objects.create_user(email=email, password=password, account_type=account_type)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=email_verified)
    audit_record(
        actor=actor, action="user.create", target=user, data={"account_type": account_type, "is_staff": is_staff}
    )
    if account_type == AccountType.RATER and not is_staff:
        rater_profile_create(user=user, actor=actor)
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str, actor: Actor) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(actor=actor, action="user.set_password", target=user)


# --- Organizations and memberships --------------------------------------------------------------


@transaction.atomic
def organization_create(*, name: str, owner: User, actor: Actor) -> Organization:
    name = name.strip()
    if not name:
        raise ApplicationError("An organization needs a name.", fields={"name": ["This field is required."]})
    organization = _organization_insert_with_unique_slug(name)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    audit_record(actor=actor, action="organization.create", target=organization, data={"owner": owner.email})
    return organization


def _organization_insert_with_unique_slug(name: str) -> Organization:
    base = slugify(name)[:60] or "organization"
    taken = set(Organization.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    slug = base
    suffix = 2
    while slug in taken:
        slug = f"{base}-{suffix}"
        suffix += 1
    try:
        with transaction.atomic():
            return Organization.objects.create(name=name, slug=slug)
    except IntegrityError:
        # Another request took the same slug between our read and our insert.
        return Organization.objects.create(name=name, slug=f"{base}-{secrets.token_hex(3)}")


def _ensure_another_owner_remains(membership: Membership) -> None:
    other_owners = Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER).exclude(
        pk=membership.pk
    )
    if not other_owners.exists():
        raise ConflictError("An organization must keep at least one owner.", code="last_owner")


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, actor: Actor) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid_role")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER:
        _ensure_another_owner_remains(membership)
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.role_change",
        target=membership,
        data={"user": membership.user.email, "from": previous, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor) -> None:
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == Role.OWNER:
        _ensure_another_owner_remains(membership)
    audit_record(
        actor=actor,
        action="membership.remove",
        target=membership,
        data={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()


# --- Invitations --------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(*, organization: Organization, email: str, role: str, actor: User) -> Invitation:
    email = email.strip().lower()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid_role")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ConflictError(f"{email} is already a member.", code="already_member")
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                token=secrets.token_urlsafe(32),
                invited_by=actor,
                expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
            )
    except IntegrityError:
        raise ConflictError(f"{email} already has an open invitation.", code="already_invited") from None
    audit_record(actor=actor, action="invitation.create", target=invitation, data={"email": email, "role": role})
    transaction.on_commit(lambda: invitation_email_send.delay(invitation.pk))
    return invitation


def _lock_open_invitation(invitation: Invitation) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise ConflictError("This invitation has already been accepted.", code="invitation_used")
    if invitation.revoked_at is not None:
        raise ConflictError("This invitation was withdrawn.", code="invitation_revoked")
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the organization. Only the invited address may accept, and only
    once it is verified: the link alone must not be enough."""
    invitation = _lock_open_invitation(invitation)
    if invitation.expires_at <= timezone.now():
        raise ConflictError("This invitation has expired; ask for a new one.", code="invitation_expired")
    verified = EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=True).exists()
    if not verified:
        raise ApplicationError(
            f"This invitation is for {invitation.email}; log in with that verified address to accept it.",
            code="invitation_wrong_user",
        )
    membership, created = Membership.objects.get_or_create(
        organization_id=invitation.organization_id, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if user.account_type != AccountType.CLIENT:
        user.account_type = AccountType.CLIENT
        user.save(update_fields=["account_type"])
    audit_record(
        actor=user,
        action="invitation.accept",
        target=invitation,
        data={"email": invitation.email, "role": membership.role, "new_membership": created},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    invitation = _lock_open_invitation(invitation)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="invitation.revoke", target=invitation, data={"email": invitation.email})
    return invitation


# --- API keys -----------------------------------------------------------------------------------


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, organization: Organization, name: str, actor: User) -> tuple[ApiKey, str]:
    """Create a key and return it with its only plaintext copy, to show once."""
    name = name.strip()
    if not name:
        raise ApplicationError("A key needs a name.", fields={"name": ["This field is required."]})
    key_id = secrets.token_hex(API_KEY_ID_LENGTH // 2)
    raw_key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        organization=organization, name=name[:100], prefix=key_id, hashed_key=api_key_hash(raw_key), created_by=actor
    )
    audit_record(actor=actor, action="api_key.create", target=api_key, data={"name": api_key.name, "prefix": key_id})
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        raise ConflictError("This key is already revoked.", code="already_revoked")
    api_key.revoked_at = timezone.now()
    api_key.revoked_by = actor if isinstance(actor, User) else None
    api_key.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(actor=actor, action="api_key.revoke", target=api_key, data={"prefix": api_key.prefix})
    return api_key


def api_key_matching(raw_key: str) -> ApiKey | None:
    """The active key that `raw_key` is, without touching it."""
    key_id = _api_key_id(raw_key)
    if key_id is None:
        return None
    api_key = ApiKey.objects.select_related("organization").filter(prefix=key_id, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, api_key_hash(raw_key)):
        return None
    return api_key


def api_key_use(*, raw_key: str) -> ApiKey | None:
    """The active key that `raw_key` is, with its last-used time brought up to date.

    The time is written at most once a minute per key so that a busy client
    does not turn every read into a write.
    """
    api_key = api_key_matching(raw_key)
    if api_key is None:
        return None
    now = timezone.now()
    stale = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    updated = (
        ApiKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale))
        .update(last_used_at=now)
    )
    if updated:
        api_key.last_used_at = now
    return api_key


def _api_key_id(raw_key: str) -> str | None:
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    key_id = raw_key[len(API_KEY_PREFIX) : len(API_KEY_PREFIX) + API_KEY_ID_LENGTH]
    if len(key_id) != API_KEY_ID_LENGTH or raw_key[len(API_KEY_PREFIX) + API_KEY_ID_LENGTH :][:1] != "_":
        return None
    return key_id
