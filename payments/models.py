"""Money: the ledger, what raters earn, how clients fund studies and how raters are paid.

The ledger (`LedgerAccount`, `LedgerTransaction`, `LedgerEntry`) is the record of money;
everything else here describes *why* money moved and links to the ledger transaction that
moved it. Amounts are integer cents (minor units) with a lowercase ISO currency.

Sign convention: an entry's `amount_cents` is positive for a debit and negative for a
credit; every transaction's entries sum to zero per currency. Liabilities (what we owe
organizations and raters) and revenue are credit-normal, so their balance as people read
it is the negated sum (see `LedgerAccount.balance_for_display`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# --- Ledger ---------------------------------------------------------------------------------------


class AccountKind(models.TextChoices):
    ORG_FUNDS = "org_funds", "Organization prepaid funds"
    RATER_PENDING = "rater_pending", "Rater pay, pending review"
    RATER_AVAILABLE = "rater_available", "Rater pay, available for payout"
    PAYOUTS_IN_TRANSIT = "payouts_in_transit", "Payouts being sent"
    PLATFORM_REVENUE = "platform_revenue", "Platform fee revenue"
    PLATFORM_EXPENSE = "platform_expense", "Platform expense (staff bonuses, dispute losses)"
    STRIPE_BALANCE = "stripe_balance", "Stripe balance"
    STRIPE_FEES = "stripe_fees", "Stripe fees"


DEBIT_NORMAL_KINDS = frozenset({AccountKind.STRIPE_BALANCE, AccountKind.STRIPE_FEES, AccountKind.PLATFORM_EXPENSE})


class LedgerAccount(models.Model):
    """One account per (kind, owner, currency); created on first use, never deleted."""

    key = models.CharField(max_length=80, unique=True, help_text="kind:owner:currency, e.g. org_funds:12:usd")
    kind = models.CharField(max_length=24, choices=AccountKind.choices)
    currency = models.CharField(max_length=3)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    # The sum of this account's entries, kept in the posting's transaction so reads are one row;
    # `ledger.ledger_check` proves it equals the entries.
    balance_cents = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["kind", "currency"], name="ledger_account_kind")]

    def __str__(self) -> str:
        return self.key

    @property
    def debit_normal(self) -> bool:
        return self.kind in DEBIT_NORMAL_KINDS

    @property
    def balance_for_display(self) -> int:
        """The balance as people read it: what we owe, for a liability; what we hold, for an asset."""
        return self.balance_cents if self.debit_normal else -self.balance_cents


class LedgerTransaction(models.Model):
    """A balanced set of entries. `reference` is unique, so a retried posting never posts twice."""

    reference = models.CharField(max_length=160, unique=True)
    kind = models.CharField(max_length=32)
    memo = models.CharField(max_length=255, blank=True)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    study = models.ForeignKey("evaluations.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["kind", "-created_at"], name="ledger_txn_kind_time"),
            models.Index(fields=["study", "kind"], name="ledger_txn_study_kind"),
            models.Index(fields=["rater", "-created_at"], name="ledger_txn_rater_time"),
        ]

    def __str__(self) -> str:
        return self.reference


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount_cents = models.BigIntegerField(help_text="Positive: debit. Negative: credit. Never zero.")
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount_cents=0), name="ledger_entry_nonzero")]
        indexes = [models.Index(fields=["account", "id"], name="ledger_entry_account")]

    def __str__(self) -> str:
        return f"{self.account.key} {self.amount_cents:+d} {self.currency}"


# --- What raters earn -------------------------------------------------------------------------------


class EarningKind(models.TextChoices):
    TASK = "task", "Task pay"
    FLOOR_TOPUP = "floor_topup", "Fair-pay top-up"
    BONUS = "bonus", "Bonus"


class EarningStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    AVAILABLE = "available", "Available"
    HELD = "held", "Held for quality review"
    REJECTED = "rejected", "Rejected"


class Earning(models.Model):
    """One amount credited to a rater, and where it stands.

    Its money sits in the rater's pending account until `available_at`, then moves to the
    available account (`earnings_release_due`), unless quality review holds it; a rejection
    returns it to the client and must say why.
    """

    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="earnings")
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    study = models.ForeignKey("evaluations.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    vote = models.OneToOneField(
        "evaluations.Vote", null=True, blank=True, on_delete=models.PROTECT, related_name="earning"
    )
    kind = models.CharField(max_length=16, choices=EarningKind.choices)
    status = models.CharField(max_length=16, choices=EarningStatus.choices, default=EarningStatus.PENDING)
    amount_cents = models.BigIntegerField(help_text="What the rater receives.")
    fee_cents = models.BigIntegerField(default=0, help_text="The platform fee the client paid on top.")
    currency = models.CharField(max_length=3)
    reason = models.TextField(blank=True, help_text="Why (bonuses, top-ups): shown to the rater.")
    detail = models.JSONField(default=dict, blank=True, help_text="How a top-up was computed.")
    available_at = models.DateTimeField(help_text="When pending pay becomes available, unless held.")
    hold_reason = models.TextField(blank=True)
    rejection_reason = models.TextField(blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    posting = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="+")
    released_by = models.ForeignKey(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="released_earnings"
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="earning_amount_positive")]
        indexes = [
            models.Index(fields=["rater", "-created_at"], name="earning_rater_time"),
            models.Index(fields=["status", "available_at"], name="earning_due"),
            models.Index(fields=["study", "rater", "kind"], name="earning_study_rater"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_cents} {self.currency} ({self.status})"


class AppealStatus(models.TextChoices):
    OPEN = "open", "Open"
    UPHELD = "upheld", "Appeal upheld: pay reinstated"
    DENIED = "denied", "Appeal denied"


class EarningAppeal(models.Model):
    earning = models.ForeignKey(Earning, on_delete=models.PROTECT, related_name="appeals")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    message = models.TextField()
    status = models.CharField(max_length=8, choices=AppealStatus.choices, default=AppealStatus.OPEN)
    response = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["earning"], condition=Q(status="open"), name="one_open_appeal_per_earning")
        ]

    def __str__(self) -> str:
        return f"Appeal on earning {self.earning_id} ({self.status})"


# --- Client funding ---------------------------------------------------------------------------------


class FundingStatus(models.TextChoices):
    OPEN = "open", "Awaiting payment"
    PROCESSING = "processing", "Payment processing"
    PAID = "paid", "Paid"
    FAILED = "failed", "Payment failed"


class Funding(models.Model):
    """One top-up of an organization's prepaid funds through a Stripe Checkout Session.

    The funds are credited only from a verified webhook, never from the redirect back.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="fundings")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=12, choices=FundingStatus.choices, default=FundingStatus.OPEN)
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    fee_cents = models.BigIntegerField(null=True, blank=True, help_text="Stripe's fee, from the balance transaction.")
    refunded_cents = models.BigIntegerField(default=0)
    disputed_cents = models.BigIntegerField(default=0)
    failure_reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="funding_amount_positive")]

    def __str__(self) -> str:
        return f"Funding {self.pk}: {self.amount_cents} {self.currency} ({self.status})"


# --- Rater payouts ----------------------------------------------------------------------------------


class ConnectedAccount(models.Model):
    """A rater's Stripe connected account. Only Stripe's status flags are kept: no card or bank data."""

    rater = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="connected_account")
    stripe_account_id = models.CharField(max_length=255, unique=True)
    details_submitted = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    charges_enabled = models.BooleanField(default=False)
    transfers_capability = models.CharField(max_length=16, default="inactive")
    requirements_due = models.JSONField(default=list, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    # Stripe time of the newest account state applied: an older event arriving late is ignored.
    status_as_of = models.DateTimeField(null=True, blank=True)
    # Stripe time of the newest `payout.paid` on this account: transfers sent before it have arrived.
    paid_through = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.stripe_account_id

    @property
    def can_receive_transfers(self) -> bool:
        return self.transfers_capability == "active"


class PayoutHold(models.Model):
    """Staff stop a rater's payouts (their earnings keep accruing) until the hold is released."""

    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payout_holds")
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rater"], condition=Q(released_at__isnull=True), name="one_active_payout_hold_per_rater"
            )
        ]

    def __str__(self) -> str:
        return f"Hold on {self.rater_id} ({'released' if self.released_at else 'active'})"


class PayoutBatchTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Weekly schedule"
    STAFF = "staff", "Staff, on demand"


class PayoutBatch(models.Model):
    trigger = models.CharField(max_length=16, choices=PayoutBatchTrigger.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    currency = models.CharField(max_length=3, default="usd")
    minimum_cents = models.BigIntegerField()
    payouts_count = models.PositiveIntegerField(default=0)
    total_cents = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Payout batch {self.pk}"


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    REVERSED = "reversed", "Reversed"


class Payout(models.Model):
    """One Stripe Transfer of a rater's available balance.

    `idempotency_key` is saved before the call to Stripe, so a retry after any interruption
    asks Stripe for the same transfer instead of a second one.
    """

    batch = models.ForeignKey(PayoutBatch, on_delete=models.PROTECT, related_name="payouts")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    connected_account = models.ForeignKey(ConnectedAccount, on_delete=models.PROTECT, related_name="payouts")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    idempotency_key = models.CharField(max_length=255, unique=True)
    stripe_transfer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payout_amount_positive"),
            models.UniqueConstraint(fields=["batch", "rater"], name="one_payout_per_rater_per_batch"),
            # A rater never has two payouts in flight: a second batch cannot pay the same money.
            models.UniqueConstraint(
                fields=["rater"], condition=Q(status="pending"), name="one_pending_payout_per_rater"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="payout_due")]

    def __str__(self) -> str:
        return f"Payout {self.pk}: {self.amount_cents} {self.currency} ({self.status})"


# --- Stripe events and reconciliation ---------------------------------------------------------------


class WebhookEndpoint(models.TextChoices):
    PLATFORM = "platform", "Platform events"
    CONNECT = "connect", "Connect events"


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (type not handled)"
    DEFERRED = "deferred", "Deferred (waiting for an earlier event)"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """Every verified event, stored by its id before it is handled: a duplicate is a no-op."""

    event_id = models.CharField(max_length=255, unique=True)
    endpoint = models.CharField(max_length=12, choices=WebhookEndpoint.choices)
    type = models.CharField(max_length=100, db_index=True)
    account = models.CharField(max_length=255, blank=True, help_text="The connected account (Connect events).")
    stripe_created = models.DateTimeField()
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=StripeEventStatus.choices, default=StripeEventStatus.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="stripe_event_status")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class ReconciliationStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "Everything matches"
    MISMATCHES = "mismatches", "Mismatches found"
    ERROR = "error", "Could not complete"


class ReconciliationRun(models.Model):
    status = models.CharField(max_length=12, choices=ReconciliationStatus.choices, default=ReconciliationStatus.RUNNING)
    checked = models.JSONField(default=dict, blank=True, help_text="What was compared, with counts.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation {self.pk} ({self.status})"


class ReconciliationMismatch(models.Model):
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="mismatches")
    kind = models.CharField(max_length=48)
    reference = models.CharField(max_length=255, help_text="The ledger reference or Stripe id concerned.")
    ledger_cents = models.BigIntegerField(null=True, blank=True)
    stripe_cents = models.BigIntegerField(null=True, blank=True)
    detail = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.reference}"
