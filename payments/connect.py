"""Rater onboarding with Stripe Connect: one connected account per rater, its status kept from Stripe.

Whether a rater can be paid is decided from the account's status fields as Stripe reports them
(`account.updated` webhooks, or a retrieve when the rater comes back from onboarding), never from
the redirect itself. Events can arrive late and out of order: a state older than the one applied
is ignored. Only Stripe's status flags are kept here; no card or bank data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from crowdplatform.accounts.models import AccountType
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError
from payments import stripe_api
from payments.models import ConnectedAccount, StripeEvent, WebhookEndpoint
from payments.webhooks import EventIgnored, handles

if TYPE_CHECKING:
    from crowdplatform.accounts.models import User

# The status fields copied from Stripe's account object (see `_status_copy`).
_STATUS_FIELDS = (
    "details_submitted",
    "payouts_enabled",
    "charges_enabled",
    "transfers_capability",
    "requirements_due",
    "disabled_reason",
)


def connected_account_ensure(*, rater: User) -> ConnectedAccount:
    """The rater's connected account, created at Stripe (once) and recorded if it is not yet.

    The idempotency key is derived from the user, so two concurrent calls (or a retry after a
    crash between Stripe's answer and our insert) get the same Stripe account back, and the
    unique constraint on `rater` keeps one row.
    """
    existing = ConnectedAccount.objects.filter(rater=rater).first()
    if existing is not None:
        return existing
    if rater.account_type != AccountType.RATER:
        raise ApplicationError("Only raters are paid through Stripe Connect.", code="not_a_rater")
    account = stripe_api.account_create(
        email=rater.email,
        idempotency_key=f"connect-account:{rater.pk}",
        metadata={"rater_id": str(rater.pk)},
    )
    try:
        with transaction.atomic():
            row = ConnectedAccount(rater=rater, stripe_account_id=account["id"])
            _status_copy(row, account)
            row.status_as_of = _from_timestamp(account.get("created"))
            row.save()
            audit_record(
                actor=rater,
                action="connect.account_create",
                target=row,
                data={"stripe_account_id": row.stripe_account_id},
            )
    except IntegrityError:
        # A concurrent call recorded it first (same Stripe account: same idempotency key).
        return ConnectedAccount.objects.get(rater=rater)
    return row


def onboarding_link_create(*, rater: User) -> str:
    """A single-use Stripe onboarding URL for the rater (their account is created if needed)."""
    account = connected_account_ensure(rater=rater)
    link = stripe_api.account_link_create(
        account_id=account.stripe_account_id,
        refresh_url=settings.SITE_URL + reverse("payments:connect_refresh"),
        return_url=settings.SITE_URL + reverse("payments:connect_return"),
    )
    return link["url"]


def account_status_apply(*, account: dict[str, Any], as_of: datetime) -> ConnectedAccount | None:
    """Apply Stripe's status of `account` as it was at `as_of`.

    Returns None when the account is not one of ours. A state older than the one already applied
    changes nothing (the row is returned unchanged): webhooks can arrive out of order.
    """
    with transaction.atomic():
        row = ConnectedAccount.objects.select_for_update().filter(stripe_account_id=account.get("id")).first()
        if row is None:
            return None
        if row.status_as_of is not None and as_of < row.status_as_of:
            return row
        before = {name: getattr(row, name) for name in _STATUS_FIELDS}
        _status_copy(row, account)
        row.status_as_of = as_of
        row.save()
        changed = {name: getattr(row, name) for name in _STATUS_FIELDS if getattr(row, name) != before[name]}
        if changed:
            audit_record(actor=None, action="connect.account_status", target=row, data=changed)
        return row


def account_status_refresh(*, rater: User) -> ConnectedAccount | None:
    """Fetch the rater's account from Stripe and apply it (the rater came back from onboarding)."""
    row = ConnectedAccount.objects.filter(rater=rater).first()
    if row is None:
        return None
    # Taken before the request: the answer is at least as new as this moment.
    as_of = timezone.now()
    account = stripe_api.account_retrieve(account_id=row.stripe_account_id)
    return account_status_apply(account=account, as_of=as_of)


@handles("account.updated", endpoint=WebhookEndpoint.CONNECT)
def on_account_updated(event: StripeEvent, obj: dict[str, Any]) -> None:
    applied = account_status_apply(account=obj, as_of=event.stripe_created)
    if applied is None:
        # Another platform's account, or one created outside this app: not ours to track.
        raise EventIgnored(f"Account {obj.get('id')} is not a connected account of ours.")
    if applied.status_as_of is not None and applied.status_as_of > event.stripe_created:
        raise EventIgnored("Older than the account state already applied (delivered out of order).")


def _status_copy(row: ConnectedAccount, account: dict[str, Any]) -> None:
    requirements = account.get("requirements") or {}
    capabilities = account.get("capabilities") or {}
    row.details_submitted = bool(account.get("details_submitted"))
    row.payouts_enabled = bool(account.get("payouts_enabled"))
    row.charges_enabled = bool(account.get("charges_enabled"))
    row.transfers_capability = str(capabilities.get("transfers") or "inactive")[:16]
    row.requirements_due = list(requirements.get("currently_due") or [])
    row.disabled_reason = str(requirements.get("disabled_reason") or "")[:255]


def _from_timestamp(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) else None
