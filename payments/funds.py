"""Organization funds: what a client can still spend, and studies that stop when it runs out.

A study hands out a task only if the organization's prepaid funds cover it, counting every
open lease in the organization's studies as already spent (a leased task is always paid:
the rater did the work). When funds run out the organization's live studies pause
themselves, with a notice to the client; a top-up resumes the studies paused for that reason.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from crowdplatform.core.errors import ConflictError
from evaluations.models import Study, StudyStatus, Task, TaskStatus
from payments import ledger

FUNDS_PAUSE_REASON = "funds"


def funds_balance_cents(*, organization_id: int, currency: str) -> int:
    """The organization's prepaid funds (may be negative after a refund or dispute)."""
    return ledger.balance(ledger.org_funds(organization_id, currency))


def committed_cents(*, organization_id: int, currency: str, now: datetime) -> int:
    """What the organization's open leases will cost when voted on."""
    total = (
        Task.objects.filter(
            study__organization_id=organization_id,
            study__currency=currency,
            status=TaskStatus.LEASED,
            expires_at__gt=now,
        )
        .annotate(
            cost=F("study__pay_per_task_cents") + F("study__pay_per_task_cents") * F("study__platform_fee_bps") / 10_000
        )
        .aggregate(total=Sum("cost"))["total"]
    )
    return int(total or 0)


def spendable_cents(*, organization_id: int, currency: str, now: datetime | None = None) -> int:
    """Funds not yet committed to open leases."""
    now = now or timezone.now()
    return funds_balance_cents(organization_id=organization_id, currency=currency) - committed_cents(
        organization_id=organization_id, currency=currency, now=now
    )


def affordable_tasks_by_funds(study: Study, now: datetime) -> int:
    """How many more tasks of `study` the organization's uncommitted funds pay for."""
    spendable = spendable_cents(organization_id=study.organization_id, currency=study.currency, now=now)
    return max(spendable, 0) // study.cost_per_task_cents


def funds_lock(*, organization_id: int, currency: str) -> None:
    """Lock the organization's funds account row for the rest of the transaction (creating it
    if new), so that leases near the end of the funds are handed out one at a time."""
    from payments.models import LedgerAccount

    ref = ledger.org_funds(organization_id, currency)
    LedgerAccount.objects.get_or_create(
        key=ref.key, defaults={"kind": ref.kind, "currency": currency, "organization_id": organization_id}
    )
    list(LedgerAccount.objects.select_for_update().filter(key=ref.key).values_list("pk", flat=True))


def launch_funding_problem(study: Study, now: datetime | None = None) -> str | None:
    """Why the organization's funds do not let `study` launch, or None."""
    now = now or timezone.now()
    wanted = min(settings.LAUNCH_FUNDED_TASKS_MIN, max(study.budget_cents // study.pay_per_task_cents, 1))
    if affordable_tasks_by_funds(study, now) >= wanted:
        return None
    needed = wanted * study.cost_per_task_cents
    tasks = "task" if wanted == 1 else f"{wanted} tasks"
    return (
        f"Add funds: the organization's prepaid funds must cover the study's next {tasks} "
        f"({needed / 100:.2f} {study.currency.upper()} including the platform fee)."
    )


def funds_watch(*, organization_id: int) -> None:
    """After money left the organization's funds: pause its studies if it ran out (after commit)."""
    from payments.tasks import studies_pause_unfunded

    transaction.on_commit(lambda: studies_pause_unfunded.delay(organization_id))


def studies_pause_unfunded(*, organization_id: int, now: datetime | None = None) -> list[Study]:
    """Pause each live study of the organization that cannot pay for its next task, and tell
    the client. Idempotent: an already paused study is left alone."""
    from evaluations.services import study_pause

    now = now or timezone.now()
    paused = []
    for study in Study.objects.filter(organization_id=organization_id, status=StudyStatus.LIVE):
        if affordable_tasks_by_funds(study, now) > 0:
            continue
        try:
            with transaction.atomic():
                study = study_pause(
                    study=study,
                    actor=None,
                    reason="The organization's prepaid funds ran out.",
                    paused_reason=FUNDS_PAUSE_REASON,
                )
        except ConflictError:
            continue  # paused (or completed) meanwhile, by a person or a concurrent run of this job
        paused.append(study)
    if paused:
        _notice_send(organization_id, paused)
    return paused


def studies_resume_funded(*, organization_id: int, now: datetime | None = None) -> list[Study]:
    """Resume the studies the platform paused for lack of funds, once funds cover a task."""
    from evaluations.services import study_resume

    now = now or timezone.now()
    resumed = []
    for study in Study.objects.filter(
        organization_id=organization_id, status=StudyStatus.PAUSED, paused_reason=FUNDS_PAUSE_REASON
    ):
        if affordable_tasks_by_funds(study, now) <= 0:
            continue
        try:
            with transaction.atomic():
                resumed.append(study_resume(study=study, actor=None))
        except ConflictError:
            continue
    return resumed


def _notice_send(organization_id: int, studies: list[Study]) -> None:
    from crowdplatform.accounts.models import Membership, Role

    recipients = list(
        Membership.objects.filter(organization_id=organization_id, role=Role.OWNER).values_list(
            "user__email", flat=True
        )
    )
    if not recipients:
        return
    names = ", ".join(study.name for study in studies)
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}Studies paused: prepaid funds ran out",
        message=(
            f"These studies stopped handing out tasks because your organization's prepaid funds ran out: {names}.\n"
            "Add funds on the billing page and they resume by themselves.\n"
        ),
        from_email=None,
        recipient_list=recipients,
        fail_silently=True,
    )
