"""Reads for the money pages: every figure comes from the ledger or the rows that explain it.

Raters see their own money; clients see their organization's, with raters by pseudonym only;
staff see everything. Each function here reads for one of them; access is checked by the
caller (views use `crowdplatform.accounts.access` and `evaluations.access`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Least
from django.utils import timezone

from crowdplatform.core.pseudonyms import pseudonym
from payments import ledger
from payments.funds import committed_cents
from payments.models import (
    AppealStatus,
    Earning,
    EarningAppeal,
    EarningKind,
    EarningStatus,
    Funding,
    FundingStatus,
    LedgerTransaction,
    Payout,
    PayoutStatus,
)

if TYPE_CHECKING:
    from crowdplatform.accounts.models import Organization, User


def rater_pseudonym(*, study_id: int, rater_user_id: int) -> str:
    """How a client knows a rater within one study: stable there, unrelated elsewhere."""
    return pseudonym(scope=f"study:{study_id}:rater", value=rater_user_id, length=12)


# --- Raters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterMoney:
    currency: str
    pending_cents: int  # in the review window
    held_cents: int  # held for quality review (part of the pending account)
    available_cents: int  # ready for the next payout
    in_transit_cents: int  # in a payout being sent
    paid_cents: int  # sent by Stripe transfer
    rejected_cents: int

    @property
    def earned_cents(self) -> int:
        return self.pending_cents + self.held_cents + self.available_cents + self.in_transit_cents + self.paid_cents


def rater_money(*, rater: User, currency: str = "usd") -> RaterMoney:
    pending_account = ledger.balance(ledger.rater_pending(rater.pk, currency))
    sums = Earning.objects.filter(rater=rater, currency=currency).aggregate(
        held=Sum("amount_cents", filter=Q(status=EarningStatus.HELD)),
        rejected=Sum("amount_cents", filter=Q(status=EarningStatus.REJECTED)),
    )
    payouts = Payout.objects.filter(rater=rater, currency=currency).aggregate(
        transit=Sum("amount_cents", filter=Q(status=PayoutStatus.PENDING)),
        paid=Sum("amount_cents", filter=Q(status__in=[PayoutStatus.SENT, PayoutStatus.PAID])),
    )
    held = sums["held"] or 0
    transit = (payouts["transit"] or 0) + _failed_still_reserved_cents(rater=rater, currency=currency)
    return RaterMoney(
        currency=currency,
        pending_cents=pending_account - held,
        held_cents=held,
        available_cents=ledger.balance(ledger.rater_available(rater.pk, currency)),
        in_transit_cents=transit,
        paid_cents=payouts["paid"] or 0,
        rejected_cents=sums["rejected"] or 0,
    )


def _failed_still_reserved_cents(*, rater: User, currency: str) -> int:
    """Failed payouts whose money is still reserved (Stripe may have made the transfer; staff
    retry settles it): neither available nor paid, so it counts as in payout."""
    failed = dict(
        Payout.objects.filter(rater=rater, currency=currency, status=PayoutStatus.FAILED).values_list(
            "pk", "amount_cents"
        )
    )
    if not failed:
        return 0
    returned = set(
        LedgerTransaction.objects.filter(reference__in=[f"payout:{pk}:return" for pk in failed]).values_list(
            "reference", flat=True
        )
    )
    return sum(amount for pk, amount in failed.items() if f"payout:{pk}:return" not in returned)


@dataclass
class StudyEarnings:
    study_id: int | None
    study_name: str
    currency: str
    tasks: int = 0
    task_pay_cents: int = 0
    topups_cents: int = 0
    bonuses_cents: int = 0
    rejected_cents: int = 0
    seconds: float = 0.0
    floor_cents_per_hour: int | None = None

    @property
    def total_cents(self) -> int:
        return self.task_pay_cents + self.topups_cents + self.bonuses_cents

    @property
    def effective_cents_per_hour(self) -> int | None:
        """Task pay and top-ups over time on task (bonuses are extra, not part of the rate)."""
        if self.seconds <= 0:
            return None
        return round((self.task_pay_cents + self.topups_cents) * 3600 / self.seconds)


def rater_earnings_by_study(*, rater: User) -> list[StudyEarnings]:
    """Per study: tasks, pay, top-ups, bonuses, time on task and the effective hourly rate."""
    from evaluations.models import Vote

    rows: dict[int | None, StudyEarnings] = {}
    for row in (
        Earning.objects.filter(rater=rater)
        .values("study_id", "study__name", "currency", "study__pay_floor_cents_per_hour")
        .annotate(
            tasks=Count("id", filter=Q(kind=EarningKind.TASK) & ~Q(status=EarningStatus.REJECTED)),
            task=Sum("amount_cents", filter=Q(kind=EarningKind.TASK) & ~Q(status=EarningStatus.REJECTED)),
            topups=Sum("amount_cents", filter=Q(kind=EarningKind.FLOOR_TOPUP)),
            bonuses=Sum("amount_cents", filter=Q(kind=EarningKind.BONUS)),
            rejected=Sum("amount_cents", filter=Q(status=EarningStatus.REJECTED)),
        )
        .order_by("study_id")
    ):
        rows[row["study_id"]] = StudyEarnings(
            study_id=row["study_id"],
            study_name=row["study__name"] or "Platform bonuses",
            currency=row["currency"],
            tasks=row["tasks"],
            task_pay_cents=row["task"] or 0,
            topups_cents=row["topups"] or 0,
            bonuses_cents=row["bonuses"] or 0,
            rejected_cents=row["rejected"] or 0,
            floor_cents_per_hour=row["study__pay_floor_cents_per_hour"],
        )
    for row in (
        Vote.objects.filter(rater__user=rater)
        .exclude(earning__status=EarningStatus.REJECTED)
        .values("study_id")
        .annotate(ms=Sum(Least(F("duration_ms"), F("study__lease_seconds") * 1000)))
        .order_by()
    ):
        if row["study_id"] in rows:
            rows[row["study_id"]].seconds = (row["ms"] or 0) / 1000
    return sorted(rows.values(), key=lambda row: (row.study_id is None, row.study_name))


def rater_earnings(*, rater: User) -> QuerySet[Earning]:
    """The rater's earnings, newest first, with what a page shows beside each."""
    return (
        Earning.objects.filter(rater=rater)
        .select_related("study")
        .prefetch_related("appeals")
        .order_by("-created_at", "-id")
    )


def rater_payouts(*, rater: User) -> QuerySet[Payout]:
    return Payout.objects.filter(rater=rater).order_by("-created_at", "-id")


# --- Clients --------------------------------------------------------------------------------------


@dataclass
class StudySpend:
    study_id: int
    study_name: str
    status: str
    budget_cents: int
    tasks: int = 0
    task_pay_cents: int = 0
    fees_cents: int = 0
    topups_cents: int = 0
    topped_up_raters: int = 0
    bonuses_cents: int = 0
    refunded_cents: int = 0  # rejected task pay returned to the funds

    @property
    def total_cents(self) -> int:
        return self.task_pay_cents + self.fees_cents + self.topups_cents + self.bonuses_cents

    @property
    def budget_left_cents(self) -> int:
        """The budget caps the pay for votes (the fee and top-ups come on top)."""
        return max(self.budget_cents - self.task_pay_cents, 0)


@dataclass
class OrgBilling:
    currency: str
    funds_cents: int
    committed_cents: int
    funded_cents: int
    refunded_cents: int
    disputed_cents: int
    studies: list[StudySpend] = field(default_factory=list)

    @property
    def spendable_cents(self) -> int:
        return self.funds_cents - self.committed_cents

    @property
    def spent_cents(self) -> int:
        return sum(study.total_cents for study in self.studies)


def org_billing(*, organization: Organization, currency: str = "usd") -> OrgBilling:
    funding = Funding.objects.filter(organization=organization, currency=currency).aggregate(
        funded=Sum("amount_cents", filter=Q(status=FundingStatus.PAID)),
        refunded=Sum("refunded_cents"),
        disputed=Sum("disputed_cents"),
    )
    return OrgBilling(
        currency=currency,
        funds_cents=ledger.balance(ledger.org_funds(organization.pk, currency)),
        committed_cents=committed_cents(organization_id=organization.pk, currency=currency, now=timezone.now()),
        funded_cents=funding["funded"] or 0,
        refunded_cents=funding["refunded"] or 0,
        disputed_cents=funding["disputed"] or 0,
        studies=org_spend_by_study(organization=organization, currency=currency),
    )


def org_spend_by_study(*, organization: Organization, currency: str = "usd") -> list[StudySpend]:
    from evaluations.models import Study

    studies = {
        study.pk: StudySpend(
            study_id=study.pk, study_name=study.name, status=study.status, budget_cents=study.budget_cents
        )
        for study in Study.objects.filter(organization=organization, currency=currency).order_by("-created_at")
    }
    live = ~Q(status=EarningStatus.REJECTED)
    for row in (
        Earning.objects.filter(organization=organization, study__isnull=False, currency=currency)
        .values("study_id")
        .annotate(
            tasks=Count("id", filter=Q(kind=EarningKind.TASK) & live),
            task=Sum("amount_cents", filter=Q(kind=EarningKind.TASK) & live),
            fees=Sum("fee_cents", filter=Q(kind=EarningKind.TASK) & live),
            topups=Sum("amount_cents", filter=Q(kind=EarningKind.FLOOR_TOPUP)),
            topped_up=Count("rater_id", filter=Q(kind=EarningKind.FLOOR_TOPUP), distinct=True),
            bonuses=Sum("amount_cents", filter=Q(kind=EarningKind.BONUS)),
            refunded=Sum(F("amount_cents") + F("fee_cents"), filter=Q(status=EarningStatus.REJECTED)),
        )
        .order_by()
    ):
        spend = studies.get(row["study_id"])
        if spend is None:
            continue
        spend.tasks = row["tasks"]
        spend.task_pay_cents = row["task"] or 0
        spend.fees_cents = row["fees"] or 0
        spend.topups_cents = row["topups"] or 0
        spend.topped_up_raters = row["topped_up"]
        spend.bonuses_cents = row["bonuses"] or 0
        spend.refunded_cents = row["refunded"] or 0
    return list(studies.values())


def org_fundings(*, organization: Organization) -> QuerySet[Funding]:
    return Funding.objects.filter(organization=organization).order_by("-created_at", "-id")


@dataclass(frozen=True)
class StudyRater:
    pseudonym: str
    user_id: int
    tasks: int


def study_raters(*, study_id: int) -> list[StudyRater]:
    """The raters who worked on a study, by pseudonym (clients pick bonus recipients here)."""
    from evaluations.models import Vote

    rows = Vote.objects.filter(study_id=study_id).values("rater__user_id").annotate(tasks=Count("id")).order_by()
    raters = [
        StudyRater(
            pseudonym=rater_pseudonym(study_id=study_id, rater_user_id=row["rater__user_id"]),
            user_id=row["rater__user_id"],
            tasks=row["tasks"],
        )
        for row in rows
    ]
    return sorted(raters, key=lambda rater: rater.pseudonym)


def study_topups(*, study_id: int) -> list[tuple[str, Earning]]:
    """Fair-pay top-ups on a study, each with the rater's pseudonym (what the client sees)."""
    return [
        (rater_pseudonym(study_id=study_id, rater_user_id=earning.rater_id), earning)
        for earning in Earning.objects.filter(study_id=study_id, kind=EarningKind.FLOOR_TOPUP).order_by("-created_at")
    ]


# --- Staff ----------------------------------------------------------------------------------------


def appeals_open() -> QuerySet[EarningAppeal]:
    return (
        EarningAppeal.objects.filter(status=AppealStatus.OPEN)
        .select_related("earning__study", "rater")
        .order_by("created_at", "id")
    )


def platform_totals(*, currency: str = "usd") -> dict[str, int]:
    """The platform's side of the ledger, for the staff console."""
    from payments.models import AccountKind, LedgerAccount

    raw = dict(
        LedgerAccount.objects.filter(currency=currency)
        .values("kind")
        .annotate(total=Sum("balance_cents"))
        .values_list("kind", "total")
        .order_by()
    )
    credit_normal = {
        AccountKind.ORG_FUNDS,
        AccountKind.RATER_PENDING,
        AccountKind.RATER_AVAILABLE,
        AccountKind.PAYOUTS_IN_TRANSIT,
        AccountKind.PLATFORM_REVENUE,
    }
    return {kind: (-(raw.get(kind) or 0) if kind in credit_normal else raw.get(kind) or 0) for kind in AccountKind}
