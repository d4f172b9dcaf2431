"""What raters earn: task pay, the fair-pay floor, bonuses, and the review of pay.

- `earning_record` runs inside `vote_submit`'s transaction: the client's funds pay the rater's
  pending pay and the platform fee (reference `vote:<id>:pay`).
- Pending pay becomes available after the review window (`earnings_release_due`) unless
  quality review holds it (`earnings_hold`); a rejection needs a reason the rater sees and
  returns the money to the client; the rater can appeal, and an upheld appeal reinstates it.
- `floor_topups_run` makes sure nobody's effective hourly rate on a study (pay over
  server-measured time on task) stays below the study's floor; the client's funds pay it.
- `bonus_grant`: clients (from their funds) and staff (from the platform) grant bonuses with
  a reason, idempotently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Least
from django.utils import timezone

from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError, reason_checked
from payments import ledger
from payments.funds import funds_lock, funds_watch, spendable_cents
from payments.models import AppealStatus, Earning, EarningAppeal, EarningKind, EarningStatus, LedgerAccount

if TYPE_CHECKING:
    from crowdplatform.accounts.models import Organization, User
    from evaluations.models import Study, Vote

MIN_REASON_CHARS = 10
RELEASE_CHUNK = 500


def review_window() -> timedelta:
    return timedelta(hours=settings.PAY_REVIEW_WINDOW_HOURS)


# --- Task pay -------------------------------------------------------------------------------------


def earning_record(*, vote: Vote) -> None:
    """Pay the rater for an accepted vote. Called inside the vote's transaction.

    The client's prepaid funds are debited the pay plus the platform fee; the rater's pending
    account is credited the pay; the platform's revenue the fee. Pending until the review
    window ends.
    """
    study = vote.study
    rater_id = vote.rater.user_id
    pay, fee = study.pay_per_task_cents, study.fee_per_task_cents
    funds = ledger.org_funds(study.organization_id, study.currency)
    lines = [ledger.Line(funds, pay + fee), ledger.Line(ledger.rater_pending(rater_id, study.currency), -pay)]
    if fee:
        lines.append(ledger.Line(ledger.platform_revenue(study.organization_id, study.currency), -fee))
    posted = ledger.ledger_post(
        postings=[
            ledger.Posting(
                reference=f"vote:{vote.pk}:pay",
                kind="task_pay",
                lines=tuple(lines),
                organization_id=study.organization_id,
                study_id=study.pk,
                rater_id=rater_id,
                created_at=vote.created_at,
            )
        ]
    )
    if not posted.created[0]:
        return
    Earning.objects.create(
        rater_id=rater_id,
        organization_id=study.organization_id,
        study=study,
        vote=vote,
        kind=EarningKind.TASK,
        amount_cents=pay,
        fee_cents=fee,
        currency=study.currency,
        available_at=vote.created_at + review_window(),
        posting=posted.transactions[0],
        created_at=vote.created_at,
    )
    # The funds account's balance after this posting came back with the lock: no extra query.
    _watch_if_low(study, posted)


# --- Pending -> available -------------------------------------------------------------------------


def earnings_release_due(*, now: datetime | None = None) -> int:
    """Make every matured, unheld pending earning available: one posting per rater and
    currency per run. Returns how many earnings were released. Safe to run concurrently:
    earnings are locked (SKIP LOCKED) and re-checked before they move."""
    now = now or timezone.now()
    released = 0
    while True:
        with transaction.atomic():
            due = list(
                Earning.objects.select_for_update(skip_locked=True)
                .filter(status=EarningStatus.PENDING, available_at__lte=now)
                .order_by("rater_id", "id")
                .values_list("id", "rater_id", "currency", "amount_cents")[:RELEASE_CHUNK]
            )
            if not due:
                return released
            _release(due, now)
            released += len(due)


def _release(due: list[tuple[int, int, str, int]], now: datetime) -> None:
    groups: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for earning_id, rater_id, currency, amount in due:
        groups.setdefault((rater_id, currency), []).append((earning_id, amount))
    postings = [
        ledger.move(
            reference=f"release:{rater_id}:{currency}:{items[0][0]}-{items[-1][0]}:{len(items)}",
            kind="release",
            amount_cents=sum(amount for _, amount in items),
            debit=ledger.rater_pending(rater_id, currency),
            credit=ledger.rater_available(rater_id, currency),
            rater_id=rater_id,
            memo=f"{len(items)} earnings past the review window",
            created_at=now,
        )
        for (rater_id, currency), items in groups.items()
    ]
    posted = ledger.ledger_post(postings=postings)
    for txn, items in zip(posted.transactions, groups.values(), strict=True):
        Earning.objects.filter(pk__in=[earning_id for earning_id, _ in items]).update(
            status=EarningStatus.AVAILABLE, released_by=txn
        )


# --- Quality review: hold, reject, appeal ---------------------------------------------------------


def _reason_checked(reason: str, *, field: str = "reason") -> str:
    return reason_checked(reason, field=field, minimum=MIN_REASON_CHARS)


@transaction.atomic
def earnings_hold(*, rater: User, reason: str, actor: Actor, study: Study | None = None) -> int:
    """Hold the rater's pending earnings (on `study`, or all) for quality review: they stop
    maturing until released or rejected. Returns how many were held."""
    reason = _reason_checked(reason)
    pending = Earning.objects.filter(rater=rater, status=EarningStatus.PENDING)
    if study is not None:
        pending = pending.filter(study=study)
    held = pending.update(status=EarningStatus.HELD, hold_reason=reason)
    audit_record(
        actor=actor,
        action="earning.hold",
        target=rater,
        organization=study.organization if study is not None else None,
        data={"study": study.pk if study else None, "earnings": held, "reason": reason},
    )
    return held


@transaction.atomic
def earnings_hold_release(*, rater: User, actor: Actor, note: str = "", study: Study | None = None) -> int:
    """Release held earnings back to pending; those past their review window become available
    at the next release run."""
    held = Earning.objects.filter(rater=rater, status=EarningStatus.HELD)
    if study is not None:
        held = held.filter(study=study)
    released = held.update(status=EarningStatus.PENDING, hold_reason="")
    audit_record(
        actor=actor,
        action="earning.hold_release",
        target=rater,
        organization=study.organization if study is not None else None,
        data={"study": study.pk if study else None, "earnings": released, "note": note},
    )
    return released


@transaction.atomic
def earning_reject(*, earning: Earning, reason: str, actor: Actor) -> Earning:
    """Reject pending or held task pay: the money goes back to the client (pay and fee) and the
    rater sees `reason` and may appeal."""
    reason = _reason_checked(reason)
    earning = Earning.objects.select_for_update().get(pk=earning.pk)
    if earning.kind != EarningKind.TASK:
        raise ConflictError("Only task pay can be rejected.", code="not_rejectable")
    if earning.status not in (EarningStatus.PENDING, EarningStatus.HELD):
        raise ConflictError(
            f"This pay is {earning.get_status_display().lower()}: only pending or held pay can be rejected.",
            code="not_rejectable",
        )
    ledger.ledger_post(postings=[_reversal(earning, f"earning:{earning.pk}:reject", "rejection", undo=True)])
    earning.status = EarningStatus.REJECTED
    earning.rejection_reason = reason
    earning.rejected_at = timezone.now()
    earning.save(update_fields=["status", "rejection_reason", "rejected_at"])
    audit_record(
        actor=actor,
        action="earning.reject",
        target=earning,
        organization=earning.organization,
        data={"rater": earning.rater_id, "amount_cents": earning.amount_cents, "reason": reason},
    )
    from payments.funds import studies_resume_funded

    organization_id = earning.organization_id
    if organization_id is not None:
        transaction.on_commit(lambda: studies_resume_funded(organization_id=organization_id))
    return earning


def _reversal(earning: Earning, reference: str, kind: str, *, undo: bool) -> ledger.Posting:
    """The task-pay posting undone (rejection: pending -> client) or redone (reinstatement:
    client -> available)."""
    funds = ledger.org_funds(earning.organization_id, earning.currency)
    rater_account = (
        ledger.rater_pending(earning.rater_id, earning.currency)
        if undo
        else ledger.rater_available(earning.rater_id, earning.currency)
    )
    sign = -1 if undo else 1
    lines = [
        ledger.Line(funds, sign * (earning.amount_cents + earning.fee_cents)),
        ledger.Line(rater_account, -sign * earning.amount_cents),
    ]
    if earning.fee_cents:
        lines.append(
            ledger.Line(ledger.platform_revenue(earning.organization_id, earning.currency), -sign * earning.fee_cents)
        )
    return ledger.Posting(
        reference=reference,
        kind=kind,
        lines=tuple(lines),
        organization_id=earning.organization_id,
        study_id=earning.study_id,
        rater_id=earning.rater_id,
    )


@transaction.atomic
def earning_appeal(*, earning: Earning, rater: User, message: str) -> EarningAppeal:
    """The rater contests a rejection of their pay; staff answer it."""
    message = (message or "").strip()
    earning = Earning.objects.select_for_update().get(pk=earning.pk)
    if earning.rater_id != rater.pk:
        raise ApplicationError("Not your pay.", code="not_found")
    if earning.status != EarningStatus.REJECTED:
        raise ConflictError("Only rejected pay can be appealed.", code="not_appealable")
    if not message:
        raise ApplicationError(
            "Say why the rejection is wrong.", code="message_required", fields={"message": ["Required."]}
        )
    if EarningAppeal.objects.filter(earning=earning).exclude(status=AppealStatus.OPEN).exists():
        raise ConflictError("This rejection was already appealed and decided.", code="already_decided")
    try:
        with transaction.atomic():
            appeal = EarningAppeal.objects.create(earning=earning, rater=rater, message=message[:5000])
    except IntegrityError:
        raise ConflictError("An appeal on this pay is already open.", code="appeal_open") from None
    audit_record(actor=rater, action="earning.appeal", target=appeal, organization=earning.organization)
    return appeal


@transaction.atomic
def appeal_decide(*, appeal: EarningAppeal, actor: Actor, uphold: bool, response: str) -> EarningAppeal:
    """Staff answer an appeal. Upheld: the pay is reinstated (client -> rater, available at once)."""
    response = _reason_checked(response, field="response")
    appeal = EarningAppeal.objects.select_for_update().select_related("earning").get(pk=appeal.pk)
    if appeal.status != AppealStatus.OPEN:
        raise ConflictError("This appeal was already decided.", code="already_decided")
    earning = appeal.earning
    if uphold:
        ledger.ledger_post(
            postings=[_reversal(earning, f"earning:{earning.pk}:reinstate", "reinstatement", undo=False)]
        )
        Earning.objects.filter(pk=earning.pk).update(status=EarningStatus.AVAILABLE, rejection_reason="")
        if earning.organization_id is not None:
            funds_watch(organization_id=earning.organization_id)
    appeal.status = AppealStatus.UPHELD if uphold else AppealStatus.DENIED
    appeal.response = response
    appeal.decided_by = actor_user(actor)
    appeal.decided_at = timezone.now()
    appeal.save(update_fields=["status", "response", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="earning.appeal_upheld" if uphold else "earning.appeal_denied",
        target=appeal,
        organization=earning.organization,
        data={"earning": earning.pk, "response": response},
    )
    return appeal


# --- The fair-pay floor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkOnStudy:
    """A rater's paid work on one study, as the floor sees it."""

    tasks: int
    seconds: float
    task_pay_cents: int
    topups_cents: int
    topups_count: int

    def required_cents(self, floor_cents_per_hour: int) -> int:
        return math.ceil(floor_cents_per_hour * self.seconds / 3600)

    def effective_cents_per_hour(self) -> int | None:
        if self.seconds <= 0:
            return None
        return round((self.task_pay_cents + self.topups_cents) * 3600 / self.seconds)


def work_on_study(*, study: Study, rater_id: int) -> WorkOnStudy:
    """Time on task (server-measured, each task capped at the lease) and pay, over the
    rater's tasks on `study` whose pay was not rejected."""
    from evaluations.models import Vote

    votes = (
        Vote.objects.filter(study=study, rater__user_id=rater_id)
        .exclude(earning__status=EarningStatus.REJECTED)
        .aggregate(tasks=Count("id"), ms=Sum(Least(F("duration_ms"), F("study__lease_seconds") * 1000)))
    )
    pay = Earning.objects.filter(study=study, rater_id=rater_id).exclude(status=EarningStatus.REJECTED)
    sums = pay.aggregate(
        task=Sum("amount_cents", filter=Q(kind=EarningKind.TASK)),
        topups=Sum("amount_cents", filter=Q(kind=EarningKind.FLOOR_TOPUP)),
        topups_count=Count("id", filter=Q(kind=EarningKind.FLOOR_TOPUP)),
    )
    return WorkOnStudy(
        tasks=votes["tasks"],
        seconds=(votes["ms"] or 0) / 1000,
        task_pay_cents=sums["task"] or 0,
        topups_cents=sums["topups"] or 0,
        topups_count=sums["topups_count"],
    )


def floor_topups_run(*, now: datetime | None = None, study: Study | None = None) -> int:
    """Top up every rater whose effective hourly rate on a study is below its floor; the
    client's funds pay. Returns the number of top-ups posted. Idempotent."""
    from evaluations.models import Study, Vote

    now = now or timezone.now()
    votes = Vote.objects.exclude(earning__status=EarningStatus.REJECTED)
    if study is not None:
        votes = votes.filter(study=study)
    candidates = (
        votes.values("study_id", "rater__user_id", "study__pay_floor_cents_per_hour")
        .annotate(ms=Sum(Least(F("duration_ms"), F("study__lease_seconds") * 1000)))
        .order_by()
    )
    paid = _paid_by_pair(study)
    posted = 0
    studies: dict[int, Study] = {}
    for row in candidates:
        key = (row["study_id"], row["rater__user_id"])
        required = math.ceil(row["study__pay_floor_cents_per_hour"] * (row["ms"] or 0) / 1_000 / 3600)
        if required <= paid.get(key, 0):
            continue
        if row["study_id"] not in studies:
            studies[row["study_id"]] = Study.objects.get(pk=row["study_id"])
        if floor_topup(study=studies[row["study_id"]], rater_id=key[1], now=now) is not None:
            posted += 1
    return posted


def _paid_by_pair(study: Study | None) -> dict[tuple[int, int], int]:
    earnings = Earning.objects.filter(kind__in=[EarningKind.TASK, EarningKind.FLOOR_TOPUP]).exclude(
        status=EarningStatus.REJECTED
    )
    if study is not None:
        earnings = earnings.filter(study=study)
    return {
        (row["study_id"], row["rater_id"]): row["total"]
        for row in earnings.values("study_id", "rater_id").annotate(total=Sum("amount_cents")).order_by()
    }


@transaction.atomic
def floor_topup(*, study: Study, rater_id: int, now: datetime | None = None) -> Earning | None:
    """Post the top-up that lifts this rater's effective rate on `study` to its floor, if any.

    The rater's pending account is locked first, so two runs at once compute from the same
    committed state and the second finds nothing left to pay."""
    now = now or timezone.now()
    pending = ledger.rater_pending(rater_id, study.currency)
    LedgerAccount.objects.get_or_create(
        key=pending.key, defaults={"kind": pending.kind, "currency": pending.currency, "rater_id": rater_id}
    )
    list(LedgerAccount.objects.select_for_update().filter(key=pending.key).values_list("pk", flat=True))
    work = work_on_study(study=study, rater_id=rater_id)
    required = work.required_cents(study.pay_floor_cents_per_hour)
    shortfall = required - work.task_pay_cents - work.topups_cents
    if shortfall <= 0:
        return None
    posted = ledger.ledger_post(
        postings=[
            ledger.move(
                reference=f"floor:{study.pk}:{rater_id}:{work.topups_count + 1}",
                kind="floor_topup",
                amount_cents=shortfall,
                debit=ledger.org_funds(study.organization_id, study.currency),
                credit=pending,
                organization_id=study.organization_id,
                study_id=study.pk,
                rater_id=rater_id,
                memo=f"Fair-pay floor {study.pay_floor_cents_per_hour / 100:.2f}/h",
                created_at=now,
            )
        ]
    )
    earning = Earning.objects.create(
        rater_id=rater_id,
        organization_id=study.organization_id,
        study=study,
        kind=EarningKind.FLOOR_TOPUP,
        amount_cents=shortfall,
        currency=study.currency,
        reason=(
            f"Your {work.tasks} tasks took {work.seconds / 60:.1f} minutes; at the floor of "
            f"{study.pay_floor_cents_per_hour / 100:.2f} {study.currency.upper()}/h that is "
            f"{required / 100:.2f}, so {shortfall / 100:.2f} is added."
        ),
        detail={
            "tasks": work.tasks,
            "seconds": round(work.seconds, 3),
            "task_pay_cents": work.task_pay_cents,
            "topups_before_cents": work.topups_cents,
            "floor_cents_per_hour": study.pay_floor_cents_per_hour,
            "required_cents": required,
        },
        available_at=now + review_window(),
        posting=posted.transactions[0],
        created_at=now,
    )
    audit_record(
        actor=None,
        action="earning.floor_topup",
        target=earning,
        organization=study.organization,
        data={"rater": rater_id, "study": study.pk, "amount_cents": shortfall},
    )
    _watch_if_low(study, posted)
    return earning


def _watch_if_low(study: Study, posted: ledger.Posted) -> None:
    """Pause the organization's studies (after commit) if this posting left less than a task."""
    funds = ledger.org_funds(study.organization_id, study.currency)
    if -posted.balances.get(funds.key, 0) < study.cost_per_task_cents:
        funds_watch(organization_id=study.organization_id)


# --- Bonuses --------------------------------------------------------------------------------------


@transaction.atomic
def bonus_grant(
    *,
    actor: Actor,
    rater: User,
    amount_cents: object,
    reason: str,
    idempotency_key: str,
    study: Study | None = None,
    organization: Organization | None = None,
) -> tuple[Earning, bool]:
    """Grant a bonus, available at once: (earning, created).

    A client's bonus (`organization` given) is paid from its prepaid funds, to a rater who
    worked on one of its studies, and never overdraws them; a staff bonus (no organization)
    is paid by the platform. The same `idempotency_key` returns the first grant.
    """
    amount = ledger.amount_validated(amount_cents, name="amount_cents")
    if amount > settings.BONUS_MAX_CENTS:
        raise ApplicationError(
            f"A single bonus is at most {settings.BONUS_MAX_CENTS / 100:.2f}.",
            code="invalid_amount",
            fields={"amount_cents": ["Too large."]},
        )
    reason = _reason_checked(reason)
    key = (idempotency_key or "").strip()
    if not key or len(key) > 100:
        raise ApplicationError("An idempotency key of 1 to 100 characters is required.", code="idempotency_key")
    scope = f"org{organization.pk}" if organization is not None else "staff"
    stored_key = f"bonus:{scope}:{key}"
    existing = Earning.objects.filter(idempotency_key=stored_key).first()
    if existing is not None:
        if (existing.rater_id, existing.amount_cents, existing.study_id) != (
            rater.pk,
            amount,
            study.pk if study else None,
        ):
            raise ConflictError("This idempotency key was used for a different bonus.", code="idempotency_conflict")
        return existing, False
    currency = study.currency if study is not None else "usd"
    if organization is not None:
        _client_bonus_checks(organization=organization, rater=rater, study=study, amount=amount, currency=currency)
        source = ledger.org_funds(organization.pk, currency)
    else:
        source = ledger.platform_expense(currency)
    now = timezone.now()
    posted = ledger.ledger_post(
        postings=[
            ledger.move(
                reference=stored_key,
                kind="bonus",
                amount_cents=amount,
                debit=source,
                credit=ledger.rater_available(rater.pk, currency),
                organization_id=organization.pk if organization else None,
                study_id=study.pk if study else None,
                rater_id=rater.pk,
                memo=reason[:255],
                created_at=now,
            )
        ]
    )
    earning = Earning.objects.create(
        rater=rater,
        organization=organization,
        study=study,
        kind=EarningKind.BONUS,
        status=EarningStatus.AVAILABLE,
        amount_cents=amount,
        currency=currency,
        reason=reason,
        available_at=now,
        granted_by=actor_user(actor),
        idempotency_key=stored_key,
        posting=posted.transactions[0],
        created_at=now,
    )
    audit_record(
        actor=actor,
        action="earning.bonus",
        target=earning,
        organization=organization,
        data={"rater": rater.pk, "amount_cents": amount, "study": study.pk if study else None, "reason": reason},
    )
    return earning, True


def _client_bonus_checks(
    *, organization: Organization, rater: User, study: Study | None, amount: int, currency: str
) -> None:
    from evaluations.models import Vote

    if study is None or study.organization_id != organization.pk:
        raise ApplicationError("A client's bonus names one of its studies.", code="study_required")
    if not Vote.objects.filter(study=study, rater__user=rater).exists():
        raise ApplicationError("This rater has not worked on the study.", code="not_a_rater_of_study")
    funds_lock(organization_id=organization.pk, currency=currency)
    if spendable_cents(organization_id=organization.pk, currency=currency) < amount:
        raise ConflictError("The organization's prepaid funds do not cover this bonus.", code="insufficient_funds")
