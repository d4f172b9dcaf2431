"""The demo's money, end to end through Stripe (the local sandbox): `seed_demo` calls these.

1. `demo_funding_ensure`: the demo organization tops up its prepaid funds through a Checkout
   Session, paid on the sandbox, credited from the Stripe event (before the study launches).
2. `demo_payouts_ensure`: after the simulated crowd voted, the floor top-ups and the release of
   pay past the review window run, the demo raters with earnings onboard to Connect, and one
   payout batch sends their transfers.

Works whether or not a sandbox is already running (`make run` starts one): without one, an
in-process sandbox serves for the duration. Events are fetched from the Stripe API and
processed (no public webhook URL is needed); an event also delivered by webhook is a no-op.
With real Stripe keys the demo touches no money and says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings

from crowdplatform.accounts.models import Organization, User
from evaluations.models import Study
from payments import connect, earnings, ledger, payouts
from payments.funding import funding_checkout_create
from payments.models import (
    ConnectedAccount,
    Funding,
    FundingStatus,
    Payout,
    PayoutBatch,
    PayoutBatchTrigger,
    PayoutStatus,
)
from payments.sandbox.control import SandboxControl, sandbox_reachable
from payments.webhooks import events_sync

DEMO_FUNDING_CENTS = 100_000  # $1,000: the demo crowd's 1,500 votes cost $450 with the fee; top-ups on top


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    control: SandboxControl
    started_here: bool


def uses_real_stripe() -> bool:
    return "stripe.com" in settings.STRIPE_API_BASE


@contextlib.contextmanager
def sandbox_session() -> Iterator[Sandbox]:
    """The configured sandbox if it answers, else one started in this process until the block ends."""
    if sandbox_reachable(settings.STRIPE_API_BASE):
        yield Sandbox(settings.STRIPE_API_BASE, SandboxControl(settings.STRIPE_API_BASE), started_here=False)
        return
    from payments.sandbox.server import SandboxServer

    server = SandboxServer(auto_deliver=False)
    base_url = server.start()
    try:
        # No retries against an in-process server: a failure is a bug to see, not a blip.
        with override_settings(STRIPE_API_BASE=base_url, STRIPE_MAX_NETWORK_RETRIES=0):
            yield Sandbox(base_url, SandboxControl(base_url), started_here=True)
    finally:
        server.stop()


def demo_funding_ensure(*, organization: Organization, owner: User, sandbox: Sandbox) -> Funding:
    """The organization's demo top-up, paid through the sandbox Checkout and credited from Stripe's event."""
    funding = Funding.objects.filter(organization=organization, status=FundingStatus.PAID).first()
    if funding is not None:
        return funding
    funding = funding_checkout_create(organization=organization, actor=owner, amount_cents=DEMO_FUNDING_CENTS)
    sandbox.control.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    events_sync(types=["checkout.session.completed"])
    funding.refresh_from_db()
    if funding.status != FundingStatus.PAID:
        raise RuntimeError(f"The demo funding was not credited: {funding.status} {funding.failure_reason}")
    return funding


def demo_payouts_ensure(*, study: Study, sandbox: Sandbox) -> PayoutBatch | None:
    """Top-ups, release of matured pay, Connect onboarding for the demo crowd, one payout batch."""
    existing = PayoutBatch.objects.order_by("id").first()
    if existing is not None:
        return existing
    earnings.floor_topups_run(study=study)
    earnings.earnings_release_due()
    raters = User.objects.filter(earnings__study=study, email__startswith="crowd").distinct().order_by("id")
    for rater in raters:
        _onboard(rater, sandbox)
    with transaction.atomic():
        batch = payouts.payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=None)
    payouts.payout_batch_send(batch_id=batch.pk)
    for account_id in ConnectedAccount.objects.filter(payouts__batch=batch).values_list("stripe_account_id", flat=True):
        events_sync(types=["payout.paid"], account_id=account_id)
    return batch


def _onboard(rater: User, sandbox: Sandbox) -> None:
    account = connect.connected_account_ensure(rater=rater)
    if account.can_receive_transfers:
        return
    sandbox.control.account_onboard(account_id=account.stripe_account_id)
    connect.account_status_refresh(rater=rater)


def demo_money_summary(*, organization: Organization) -> str:
    """One line for seed_demo's output, every figure from the ledger or its rows."""
    funds = ledger.balance(ledger.org_funds(organization.pk, "usd"))
    batch = PayoutBatch.objects.order_by("id").first()
    if batch is None:
        return f"Demo money: organization funds {funds / 100:.2f} USD; no payout batch yet"
    paid = Payout.objects.filter(batch=batch, status__in=[PayoutStatus.SENT, PayoutStatus.PAID])
    total = sum(paid.values_list("amount_cents", flat=True))
    return (
        f"Demo money: organization funds {funds / 100:.2f} USD after paying its raters; payout batch "
        f"{batch.pk} sent {paid.count()} transfers totalling {total / 100:.2f} USD through the Stripe sandbox"
    )
