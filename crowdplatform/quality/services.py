"""Quality actions: what rules and staff do about a rater, and how it is undone.

Every function here is one transaction with its audit rows, so an action and its effects (a pause,
held pay, excluded votes, rejected pay, a suspension) commit together or not at all; a refused call
changes nothing.

- `action_record` is how rules act: applied at once (mode "auto") or proposed to staff.
- `action_apply` / `action_dismiss`: staff decide a proposal.
- `staff_action`: staff act directly, with a reason the rater sees.
- `quality_appeal_create` / `quality_appeal_decide`: the rater contests an applied action; an
  upheld appeal reverses what it did.

Excluding votes sets only `Vote.quality_status` / `quality_reason`; the per-study counters
(`Study.votes_count`, `PairStat`, item pair votes) stay as they are, so ratings and exports must
filter on `quality_status` (they leave excluded votes out by default).

Each action keeps its evidence (the figures behind it) and, in `detail`, what applying it changed,
so that reversing it undoes exactly that. Rules consult the decisions recorded here ("baselines")
so that a cleared, dismissed or reversed finding is not raised again on the same evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError, reason_checked
from crowdplatform.quality.models import (
    ActionKind,
    ActionStatus,
    AppealStatus,
    QualityAction,
    QualityAppeal,
    RaterSignal,
    RaterStudyPause,
)
from crowdplatform.raters.models import ApplicationStatus, RaterProfile
from crowdplatform.raters.services import rater_status_decide
from evaluations.models import QualityStatus, Study, Vote
from payments.earnings import earning_reject, earnings_hold, earnings_hold_release
from payments.models import Earning, EarningKind, EarningStatus

MIN_REASON_CHARS = 10
MAX_REASON_CHARS = 4000
MAX_MESSAGE_CHARS = 5000
MAX_TASK_IDS = 500
# Kinds that act on one study and make no sense without it.
STUDY_KINDS = frozenset({ActionKind.PAUSE, ActionKind.EXCLUDE_VOTES})
# What a rater can contest here. Rejected pay is appealed per task on the earnings page (payments'
# own appeal flow reinstates it through the ledger); a clear is never against the rater.
APPEALABLE_KINDS = frozenset(
    {ActionKind.WARN, ActionKind.PAUSE, ActionKind.HOLD_PAY, ActionKind.EXCLUDE_VOTES, ActionKind.SUSPEND}
)
# Counts a decision remembers, so that rules judge only the evidence that came after it.
SNAPSHOT_FIELDS = ("votes", "gold_votes", "gold_correct", "fast_votes", "a_choices", "b_choices", "longest_run")
# Vote.quality_reason is short: a label per source; the full reason is on the action.
VOTE_REASONS = {
    "gold_accuracy": "Gold accuracy below the study's threshold",
    "too_fast": "Exceptionally fast (more than 3 SD below the study's typical time)",
    "position_bias": "Position bias",
    "straight_lining": "Same answer many times in a row",
    "low_agreement": "Low agreement with other raters",
    "": "Excluded by staff after quality review",
}


# --- Helpers ------------------------------------------------------------------------------------


def _reason_checked(reason: str, *, field: str = "reason") -> str:
    return reason_checked(reason, field=field, minimum=MIN_REASON_CHARS, maximum=MAX_REASON_CHARS)


def signal_snapshot(*, rater_id: int, study_id: int | None) -> dict[str, int]:
    """The rater's counts on the study now (zeros when there are none yet)."""
    row = RaterSignal.objects.filter(rater_id=rater_id, study_id=study_id).values(*SNAPSHOT_FIELDS).first()
    return {name: int((row or {}).get(name) or 0) for name in SNAPSHOT_FIELDS}


def _snapshots(rater_id: int, study: Study | None) -> dict[str, dict[str, int]]:
    """Snapshots keyed by study id (as text, for JSON): one study, or every study of the rater."""
    if study is not None:
        return {str(study.pk): signal_snapshot(rater_id=rater_id, study_id=study.pk)}
    rows = RaterSignal.objects.filter(rater_id=rater_id, study__isnull=False).values("study_id", *SNAPSHOT_FIELDS)
    return {str(row["study_id"]): {name: int(row[name] or 0) for name in SNAPSHOT_FIELDS} for row in rows}


def _organization(action: QualityAction) -> Any:
    return action.study.organization if action.study_id else None


def _audit(action: QualityAction, *, actor: Actor, verb: str, **data: Any) -> None:
    audit_record(
        actor=actor,
        action=f"quality.{verb}",
        target=action,
        organization=_organization(action),
        data={
            "rater": action.rater_id,
            "study": action.study_id,
            "kind": action.kind,
            "rule": action.rule,
            **data,
        },
    )


def _locked(action: QualityAction) -> QualityAction:
    return (
        QualityAction.objects.select_for_update(of=("self",))
        .select_related("rater__user", "study__organization")
        .get(pk=action.pk)
    )


# --- Performing and undoing ---------------------------------------------------------------------


def _perform(action: QualityAction, actor: Actor, now: datetime) -> dict[str, Any]:
    """Do what the action says; returns what it changed (kept in `detail`)."""
    if action.kind == ActionKind.WARN:
        return {}
    if action.kind == ActionKind.PAUSE:
        return _pause(action, now)
    if action.kind == ActionKind.HOLD_PAY:
        held = earnings_hold(rater=action.rater.user, reason=action.reason, actor=actor, study=action.study)
        return {"earnings_held": held}
    if action.kind == ActionKind.EXCLUDE_VOTES:
        return _exclude(action)
    if action.kind == ActionKind.REJECT_PAY:
        return _reject(action, actor)
    if action.kind == ActionKind.SUSPEND:
        user = actor_user(actor)
        if user is None:  # never automatic: a person decides a suspension
            raise ApplicationError("Only a member of staff can suspend a rater.", code="suspend_needs_staff")
        rater_status_decide(profile=action.rater, decision="suspend", reason=action.reason, actor=user)
        return {"suspended": True}
    if action.kind == ActionKind.CLEAR:
        return _clear(action, actor, now)
    raise ApplicationError(f"Unknown action {action.kind!r}.", code="invalid_kind")  # pragma: no cover


def _pause(action: QualityAction, now: datetime) -> dict[str, Any]:
    current = RaterStudyPause.objects.filter(rater=action.rater, study=action.study, lifted_at__isnull=True).first()
    if current is not None:  # already paused by an earlier action: that pause stands, nothing new
        return {"pause": current.pk, "already_paused": True}
    try:
        with transaction.atomic():
            pause = RaterStudyPause.objects.create(rater=action.rater, study=action.study, action=action)
    except IntegrityError:  # paused at the same moment by another action
        current = RaterStudyPause.objects.get(rater=action.rater, study=action.study, lifted_at__isnull=True)
        return {"pause": current.pk, "already_paused": True}
    return {"pause": pause.pk}


def _exclude(action: QualityAction) -> dict[str, Any]:
    votes = Vote.objects.filter(rater=action.rater, study=action.study, quality_status=QualityStatus.INCLUDED)
    # The speed rule excludes only the votes that were too fast, as Prolific's rule rejects only
    # those submissions; staff exclusions take all of the rater's votes on the study.
    faster_than_ms = action.evidence.get("faster_than_ms")
    if faster_than_ms is not None:
        votes = votes.filter(duration_ms__lt=faster_than_ms)
    ids = sorted(votes.values_list("pk", flat=True))
    reason = VOTE_REASONS.get(action.rule, VOTE_REASONS[""])
    Vote.objects.filter(pk__in=ids).update(quality_status=QualityStatus.EXCLUDED, quality_reason=reason[:255])
    return {"votes_excluded": len(ids), "vote_ids": ids}


def _rejectable_earnings(rater: RaterProfile, task_ids: Iterable[str]) -> list[Earning]:
    """The task pay of the rater's votes on `task_ids`; refuses unless every task is the rater's,
    voted, and its pay still pending or held."""
    try:
        wanted = sorted({str(uuid.UUID(str(task_id))) for task_id in task_ids})
    except ValueError:
        raise ApplicationError("Unknown task ids.", code="unknown_tasks") from None
    if not wanted:
        raise ApplicationError("Name the tasks whose pay is rejected.", code="tasks_required")
    if len(wanted) > MAX_TASK_IDS:
        raise ApplicationError(f"At most {MAX_TASK_IDS} tasks at once.", code="too_many_tasks")
    earnings = list(
        Earning.objects.filter(vote__task_id__in=wanted, vote__rater=rater, kind=EarningKind.TASK)
        .select_related("vote")
        .order_by("pk")
    )
    found = {str(earning.vote.task_id) for earning in earnings}
    missing = [task_id for task_id in wanted if task_id not in found]
    if missing:
        raise ApplicationError(
            f"Not this rater's paid tasks: {', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}.",
            code="unknown_tasks",
            fields={"task_ids": ["Choose tasks of this rater."]},
        )
    settled = [e for e in earnings if e.status not in (EarningStatus.PENDING, EarningStatus.HELD)]
    if settled:
        raise ConflictError(
            f"{len(settled)} of these tasks' pay is already {settled[0].get_status_display().lower()}: "
            "only pending or held pay can be rejected.",
            code="not_rejectable",
        )
    return earnings


def _reject(action: QualityAction, actor: Actor) -> dict[str, Any]:
    earnings = _rejectable_earnings(action.rater, action.evidence.get("task_ids", []))
    for earning in earnings:
        earning_reject(earning=earning, reason=action.reason, actor=actor)
    return {
        "earnings_rejected": [earning.pk for earning in earnings],
        "amount_cents": sum(earning.amount_cents for earning in earnings),
    }


def _lift_pauses(pauses: Any, actor: Actor, now: datetime) -> int:
    return pauses.filter(lifted_at__isnull=True).update(lifted_at=now, lifted_by=actor_user(actor))


def _reinclude(vote_ids: Iterable[int]) -> int:
    return Vote.objects.filter(pk__in=list(vote_ids), quality_status=QualityStatus.EXCLUDED).update(
        quality_status=QualityStatus.INCLUDED, quality_reason=""
    )


def _clear(action: QualityAction, actor: Actor, now: datetime) -> dict[str, Any]:
    """Staff found nothing (more) to act on: undo the quality measures in force on the study (or on
    every study when none is named) and close the open proposals. A suspension is not lifted here:
    that is the rater's account status, decided on its own."""
    on_study = Q(study=action.study) if action.study_id else Q()
    pauses = _lift_pauses(RaterStudyPause.objects.filter(on_study, rater=action.rater), actor, now)
    released = earnings_hold_release(
        rater=action.rater.user, actor=actor, note=f"Quality review cleared: {action.reason}", study=action.study
    )
    excluded_ids = [
        vote_id
        for detail in QualityAction.objects.filter(
            on_study, rater=action.rater, kind=ActionKind.EXCLUDE_VOTES, status=ActionStatus.APPLIED
        ).values_list("detail", flat=True)
        for vote_id in (detail or {}).get("vote_ids", [])
    ]
    included = _reinclude(excluded_ids)
    dismissed = (
        QualityAction.objects.filter(on_study, rater=action.rater, status=ActionStatus.PROPOSED)
        .exclude(pk=action.pk)
        .update(status=ActionStatus.DISMISSED, decided_by=actor_user(actor), decided_at=now)
    )
    return {
        "pauses_lifted": pauses,
        "earnings_released": released,
        "votes_included": included,
        "proposals_dismissed": dismissed,
        "baseline": _snapshots(action.rater_id, action.study),
    }


def _undo(action: QualityAction, actor: Actor, now: datetime) -> dict[str, Any]:
    """Reverse exactly what applying the action changed."""
    if action.kind == ActionKind.PAUSE:
        return {"pauses_lifted": _lift_pauses(RaterStudyPause.objects.filter(action=action), actor, now)}
    if action.kind == ActionKind.HOLD_PAY:
        released = earnings_hold_release(
            rater=action.rater.user, actor=actor, note="Quality appeal upheld.", study=action.study
        )
        return {"earnings_released": released}
    if action.kind == ActionKind.EXCLUDE_VOTES:
        return {"votes_included": _reinclude(action.detail.get("vote_ids", []))}
    if action.kind == ActionKind.SUSPEND:
        profile = RaterProfile.objects.get(pk=action.rater_id)
        if profile.status != ApplicationStatus.SUSPENDED:
            return {"reinstated": False}
        user = actor_user(actor)
        assert user is not None  # appeals are decided by staff  # noqa: S101
        rater_status_decide(profile=profile, decision="reinstate", reason="Quality appeal upheld.", actor=user)
        return {"reinstated": True}
    return {}


# --- Rules and staff create actions ---------------------------------------------------------------


@transaction.atomic
def action_record(
    *,
    rater: RaterProfile,
    study: Study | None,
    kind: str,
    rule: str,
    reason: str,
    evidence: dict[str, Any],
    propose: bool,
    actor: Actor = None,
    now: datetime | None = None,
) -> QualityAction | None:
    """A rule's finding as an action: proposed to staff, or applied at once.

    Suspensions are always proposed, whatever the configuration: a person decides those. Returns
    None when the same proposal is already open (two refreshes at once).
    """
    now = now or timezone.now()
    if kind not in ActionKind.values or kind == ActionKind.CLEAR:
        raise ApplicationError(f"A rule cannot {kind!r}.", code="invalid_kind")
    if kind in STUDY_KINDS and study is None:
        raise ApplicationError("This action needs a study.", code="study_required")
    propose = propose or kind == ActionKind.SUSPEND
    fields = {
        "rater": rater,
        "study": study,
        "kind": kind,
        "rule": rule,
        "reason": _reason_checked(reason),
        "evidence": evidence,
        "created_by": actor_user(actor),
    }
    if propose:
        try:
            with transaction.atomic():
                action = QualityAction.objects.create(status=ActionStatus.PROPOSED, **fields)
        except IntegrityError:
            return None
        _audit(action, actor=actor, verb="action_proposed", reason=action.reason, evidence=evidence)
        return action
    action = QualityAction.objects.create(status=ActionStatus.APPLIED, decided_at=now, **fields)
    action.detail = _perform(action, actor, now)
    action.save(update_fields=["detail"])
    _audit(action, actor=actor, verb="action_applied", reason=action.reason, evidence=evidence, detail=action.detail)
    return action


@transaction.atomic
def action_apply(*, action: QualityAction, actor: Actor) -> QualityAction:
    """Staff confirm a proposed action: it takes effect now."""
    now = timezone.now()
    action = _locked(action)
    if action.status != ActionStatus.PROPOSED:
        raise ConflictError(
            f"This action is {action.get_status_display().lower()}: only a proposal can be applied.",
            code="not_proposed",
        )
    action.detail = _perform(action, actor, now)
    action.status = ActionStatus.APPLIED
    action.decided_by = actor_user(actor)
    action.decided_at = now
    action.save(update_fields=["detail", "status", "decided_by", "decided_at"])
    _audit(action, actor=actor, verb="action_applied", reason=action.reason, detail=action.detail)
    return action


@transaction.atomic
def action_dismiss(*, action: QualityAction, actor: Actor, note: str) -> QualityAction:
    """Staff decline a proposal. The rule does not raise it again on the same evidence."""
    note = _reason_checked(note, field="note")
    now = timezone.now()
    action = _locked(action)
    if action.status != ActionStatus.PROPOSED:
        raise ConflictError(
            f"This action is {action.get_status_display().lower()}: only a proposal can be dismissed.",
            code="not_proposed",
        )
    action.status = ActionStatus.DISMISSED
    action.decided_by = actor_user(actor)
    action.decided_at = now
    action.detail = {
        **action.detail,
        "dismissal": {"note": note, "baseline": _snapshots(action.rater_id, action.study)},
    }
    action.save(update_fields=["status", "decided_by", "decided_at", "detail"])
    _audit(action, actor=actor, verb="action_dismissed", note=note)
    return action


@transaction.atomic
def staff_action(
    *,
    rater: RaterProfile,
    study: Study | None,
    kind: str,
    reason: str,
    actor: Actor,
    task_ids: Iterable[str] | None = None,
) -> QualityAction:
    """A staff member acts directly (clear, warn, pause, hold pay, exclude votes, reject pay for
    named tasks, suspend), with a reason the rater sees word for word. Applied at once."""
    if actor_user(actor) is None:
        raise ApplicationError("Only a member of staff acts here.", code="staff_only")
    if kind not in ActionKind.values:
        raise ApplicationError(f"Unknown action {kind!r}.", code="invalid_kind", fields={"kind": ["Unknown."]})
    reason = _reason_checked(reason)
    if kind in STUDY_KINDS and study is None:
        raise ApplicationError(
            "Choose the study this applies to.", code="study_required", fields={"study": ["Required."]}
        )
    evidence: dict[str, Any] = {"by": "staff"}
    if study is not None:
        evidence["signal"] = signal_snapshot(rater_id=rater.pk, study_id=study.pk)
    if kind == ActionKind.REJECT_PAY:
        earnings = _rejectable_earnings(rater, task_ids or [])
        evidence["task_ids"] = sorted(str(earning.vote.task_id) for earning in earnings)
        # Pay of several studies may be named; a study given must match every task.
        if study is not None and any(earning.study_id != study.pk for earning in earnings):
            raise ApplicationError("Some of these tasks are not on the chosen study.", code="unknown_tasks")
    now = timezone.now()
    action = QualityAction.objects.create(
        rater=rater,
        study=study,
        kind=kind,
        status=ActionStatus.APPLIED,
        reason=reason,
        evidence=evidence,
        created_by=actor_user(actor),
        decided_by=actor_user(actor),
        decided_at=now,
    )
    action.rater = RaterProfile.objects.select_related("user").get(pk=rater.pk)
    action.detail = _perform(action, actor, now)
    action.save(update_fields=["detail"])
    _audit(action, actor=actor, verb="action_applied", reason=reason, evidence=evidence, detail=action.detail)
    return action


# --- Appeals --------------------------------------------------------------------------------------


@transaction.atomic
def quality_appeal_create(*, action: QualityAction, rater: RaterProfile, message: str) -> QualityAppeal:
    """The rater contests an action applied to them; staff answer on the review page."""
    message = (message or "").strip()
    action = _locked(action)
    if action.rater_id != rater.pk:
        raise ApplicationError("Not your action.", code="not_found")
    if action.kind == ActionKind.REJECT_PAY:
        raise ConflictError(
            "Appeal rejected pay on your earnings page, next to each task: the pay is reinstated from there.",
            code="appeal_on_earnings",
        )
    if action.kind not in APPEALABLE_KINDS or action.status != ActionStatus.APPLIED:
        raise ConflictError("Only an action in force can be appealed.", code="not_appealable")
    if not message:
        raise ApplicationError(
            "Say why the action is wrong.", code="message_required", fields={"message": ["Required."]}
        )
    if len(message) > MAX_MESSAGE_CHARS:
        raise ApplicationError(
            f"Keep it under {MAX_MESSAGE_CHARS} characters.", code="message_too_long", fields={"message": ["Too long."]}
        )
    if action.appeals.exclude(status=AppealStatus.OPEN).exists():
        raise ConflictError("This action was already appealed and decided.", code="already_decided")
    try:
        with transaction.atomic():
            appeal = QualityAppeal.objects.create(action=action, rater=rater, message=message)
    except IntegrityError:
        raise ConflictError("An appeal on this action is already open.", code="appeal_open") from None
    audit_record(
        actor=rater.user,
        action="quality.appeal",
        target=appeal,
        organization=_organization(action),
        data={"action": action.pk, "kind": action.kind},
    )
    return appeal


@transaction.atomic
def quality_appeal_decide(*, appeal: QualityAppeal, actor: Actor, uphold: bool, response: str) -> QualityAppeal:
    """Staff answer an appeal (the rater sees the response). Upheld: the action is reversed."""
    response = _reason_checked(response, field="response")
    if actor_user(actor) is None:
        raise ApplicationError("Only a member of staff decides appeals.", code="staff_only")
    now = timezone.now()
    appeal = QualityAppeal.objects.select_for_update().get(pk=appeal.pk)
    if appeal.status != AppealStatus.OPEN:
        raise ConflictError("This appeal was already decided.", code="already_decided")
    action = _locked(appeal.action)
    if uphold:
        if action.status != ActionStatus.APPLIED:
            raise ConflictError("This action is no longer in force.", code="not_applied")
        undone = _undo(action, actor, now)
        action.status = ActionStatus.REVERSED
        action.detail = {
            **action.detail,
            "reversal": {
                **undone,
                "appeal": appeal.pk,
                "at": now.isoformat(),
                "baseline": _snapshots(action.rater_id, action.study),
            },
        }
        action.save(update_fields=["status", "detail"])
        _audit(action, actor=actor, verb="action_reversed", appeal=appeal.pk, undone=undone)
    appeal.status = AppealStatus.UPHELD if uphold else AppealStatus.DENIED
    appeal.response = response
    appeal.decided_by = actor_user(actor)
    appeal.decided_at = now
    appeal.save(update_fields=["status", "response", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="quality.appeal_upheld" if uphold else "quality.appeal_denied",
        target=appeal,
        organization=_organization(action),
        data={"action": action.pk, "response": response},
    )
    return appeal


# --- A study's own thresholds -----------------------------------------------------------------------

_NUMERIC_KEYS = frozenset({"min_gold", "below", "sd", "min_fast", "min_votes", "p_below", "run_at_least"})


@transaction.atomic
def study_quality_rules_set(*, study: Study, rules: dict[str, dict[str, Any]], actor: Actor) -> Study:
    """Override the platform's quality rules on one study (e.g. fewer gold questions when the study
    has few gold items). Only known rules, known numeric keys, `mode` and `enabled` are accepted;
    every change is audited, and raters see the thresholds that apply to them on their page."""
    defaults = settings.QUALITY_RULES_DEFAULT
    errors: dict[str, list[str]] = {}
    for name, override in rules.items():
        if name not in defaults or not isinstance(override, dict):
            errors[name] = [f"Unknown rule; the rules are {', '.join(sorted(defaults))}."]
            continue
        for key, value in override.items():
            numeric = key in _NUMERIC_KEYS and isinstance(value, int | float) and not isinstance(value, bool)
            if (
                not (numeric and value >= 0)
                and not (key == "mode" and value in ("auto", "propose"))
                and not (key == "enabled" and isinstance(value, bool))
            ):
                errors.setdefault(name, []).append(f"{key}: not a setting of this rule, or not a valid value.")
    if errors:
        raise ApplicationError("The quality rules are not valid.", code="invalid_rules", fields=errors)
    study = Study.objects.select_for_update().get(pk=study.pk)
    before = study.quality_rules
    study.quality_rules = rules
    study.save(update_fields=["quality_rules"])
    audit_record(actor=actor, action="study.quality_rules_set", target=study, data={"from": before, "to": rules})
    return study
