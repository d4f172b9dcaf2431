"""Quality rules: when a rater's signals on a study call for an action, and which.

A rule reads the counts stored on `RaterSignal` (filled by the refresh), compares them with its
thresholds (`rules_for(study)`: the platform's `QUALITY_RULES_DEFAULT` merged with the study's own
`quality_rules`) and, when it fires, records one action per configured kind through
`services.action_record` — applied at once (mode "auto") or proposed to staff (mode "propose").

The reason of each action is written for the rater, in plain words with their own figures and the
threshold, and says what happens; the evidence keeps the same figures for staff and for the record.

A rule raises a finding once:
- not while an earlier action of the same rule on the same rater and study is proposed, or applied
  and not cleared or reversed (the speed rule is the exception: a warning first, then, when more
  votes are too fast after it, the repeat actions — exclusion by default);
- after staff clear the rater, dismiss the proposal, or uphold an appeal, the rule judges only the
  evidence that came later: gold and speed counts since that decision, and for the other rules at
  least their minimum number of new votes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crowdplatform.core.errors import ApplicationError
from crowdplatform.quality import services
from crowdplatform.quality.models import ActionKind, ActionStatus, QualityAction, RaterSignal, StudySignal
from evaluations.models import Choice, Study

logger = logging.getLogger(__name__)

Z95 = 1.959963984540054
MODES = ("auto", "propose")

# What each kind of action means for the rater, appended to a rule's reason.
CONSEQUENCES = {
    ActionKind.WARN: "This is a warning: nothing else changes for now.",
    ActionKind.PAUSE: "You are paused on this study until staff review it; your other studies are not affected.",
    ActionKind.HOLD_PAY: "Your pending pay on this study is held for review (held, not rejected).",
    ActionKind.EXCLUDE_VOTES: "These votes are left out of the study's results.",
    ActionKind.REJECT_PAY: "Your pay for these tasks is rejected.",
    ActionKind.SUSPEND: "Your account is suspended while staff review it.",
}
APPEAL_NOTE = "If you think this is wrong, you can appeal on your quality page."


# --- Configuration ------------------------------------------------------------------------------


def rules_for(study: Study) -> dict[str, dict[str, Any]]:
    """The rules that apply on `study`: the platform's defaults, each overridden key by key by the
    study's own `quality_rules` (unknown rules and malformed entries are ignored)."""
    rules = copy.deepcopy(settings.QUALITY_RULES_DEFAULT)
    for name, override in (study.quality_rules or {}).items():
        if name in rules and isinstance(override, dict):
            rules[name].update(copy.deepcopy(override))
    return rules


def _enabled(config: dict[str, Any]) -> bool:
    return config.get("enabled", True) is not False


# A rule cannot name the tasks whose pay it rejects: rejecting pay is staff's, task by task.
RULE_KINDS = frozenset(CONSEQUENCES) - {ActionKind.REJECT_PAY}


def _kinds(config: dict[str, Any], key: str = "actions") -> list[str]:
    return [kind for kind in config.get(key) or [] if kind in RULE_KINDS]


# --- Arithmetic shown to raters -----------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if trials <= 0:
        return 0.0, 1.0
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{round(share * 100)}%"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


# --- What a rule sees ---------------------------------------------------------------------------


@dataclass
class History:
    """The decisions already taken about one rule for one rater on one study."""

    pending: bool = False
    open: list[QualityAction] = field(default_factory=list)
    baseline: dict[str, int] = field(default_factory=dict)
    decided_at: datetime | None = None

    def since(self, signal: RaterSignal, name: str) -> int:
        return int(getattr(signal, name) or 0) - int(self.baseline.get(name, 0))


@dataclass(frozen=True)
class Context:
    signal: RaterSignal
    study: Study
    config: dict[str, Any]
    history: History
    study_signal: StudySignal | None


@dataclass(frozen=True)
class Finding:
    kinds: list[str]
    facts: str  # what we saw, in the rater's words
    evidence: dict[str, Any]


def _fresh(ctx: Context, minimum: int) -> bool:
    """After a staff decision, at least `minimum` new votes before the rule looks again."""
    return not ctx.history.baseline or ctx.history.since(ctx.signal, "votes") >= minimum


# --- The rules ----------------------------------------------------------------------------------


def gold_accuracy(ctx: Context) -> Finding | None:
    if ctx.history.open:
        return None
    config, signal = ctx.config, ctx.signal
    min_gold, below = int(config["min_gold"]), float(config["below"])
    gold, correct = ctx.history.since(signal, "gold_votes"), ctx.history.since(signal, "gold_correct")
    if gold <= 0 or gold < min_gold or correct / gold >= below:
        return None
    if not ctx.history.baseline and signal.gold_wilson_low is not None and signal.gold_wilson_high is not None:
        low, high = signal.gold_wilson_low, signal.gold_wilson_high
    else:
        low, high = wilson_interval(correct, gold)
    since = " since staff last reviewed your work" if ctx.history.baseline else ""
    facts = (
        f"On study “{ctx.study.name}” you answered {correct} of {gold} gold questions correctly{since} "
        f"({_pct(correct / gold)}; 95% interval {round(low * 100)}–{round(high * 100)}%). Gold questions have a "
        f"known right answer. The threshold is {_pct(below)} after {min_gold} gold questions."
    )
    evidence = {
        "gold_votes": gold,
        "gold_correct": correct,
        "accuracy": correct / gold,
        "wilson_low": low,
        "wilson_high": high,
        "min_gold": min_gold,
        "below": below,
    }
    return Finding(kinds=_kinds(config), facts=facts, evidence=evidence)


def too_fast(ctx: Context) -> Finding | None:
    config, signal, history = ctx.config, ctx.signal, ctx.history
    threshold = signal.fast_threshold_seconds
    if threshold is None:
        return None
    if history.open:
        # Repeat: more votes too fast after a warning (or an earlier exclusion) still in force.
        seen = max(int(action.evidence.get("fast_votes_total", 0)) for action in history.open)
        new = int(signal.fast_votes) - seen
        if new <= 0:
            return None
        kinds, count = _kinds(config, "repeat_actions"), new
        when = min(action.created_at for action in history.open)
        lead = f"After the warning of {when:%Y-%m-%d}, {new} more of your votes on study “{ctx.study.name}”"
    else:
        count = history.since(signal, "fast_votes")
        if count < int(config["min_fast"]):
            return None
        kinds = _kinds(config)
        lead = f"On study “{ctx.study.name}”, {count} of your {signal.votes} votes"
    typical = ctx.study_signal.speed_typical_seconds if ctx.study_signal else None
    log_sd = ctx.study_signal.speed_log_sd if ctx.study_signal else None
    facts = (
        f"{lead} took under {_seconds(threshold)}. That is more than {config['sd']:g} standard deviations below the "
        f"study's typical time per vote ({_seconds(typical)}; measured on a log scale, as task times are skewed): "
        "too fast to have read both responses."
    )
    if kinds == [ActionKind.WARN]:
        facts += " Please take the time each comparison needs: further votes this fast will be left out of the results."
    evidence = {
        "fast_votes": count,
        "fast_votes_total": int(signal.fast_votes),
        "votes": signal.votes,
        "fast_threshold_seconds": threshold,
        "faster_than_ms": math.ceil(threshold * 1000),
        "study_typical_seconds": typical,
        "study_log_sd": log_sd,
        "sd": config["sd"],
        "min_fast": config["min_fast"],
        "stage": "repeat" if history.open else "first",
    }
    return Finding(kinds=kinds, facts=facts, evidence=evidence)


def position_bias(ctx: Context) -> Finding | None:
    config, signal = ctx.config, ctx.signal
    min_votes, p_below = int(config["min_votes"]), float(config["p_below"])
    total = signal.a_choices + signal.b_choices
    p = signal.position_p_value
    if ctx.history.open or total < min_votes or p is None or p >= p_below or not _fresh(ctx, min_votes):
        return None
    facts = (
        f"On study “{ctx.study.name}” you chose the response shown on the left (A) in {signal.a_choices} of the "
        f"{total} votes where you preferred one side ({_pct(signal.a_choices / total)}). Sides are assigned at "
        f"random, so a careful rater picks each side about half the time; a split this uneven happens by chance "
        f"less than {p_below * 100:g}% of the time (p = {p:.2g}). Please judge each pair on its content, not its side."
    )
    evidence = {
        "a_choices": signal.a_choices,
        "b_choices": signal.b_choices,
        "a_share": signal.a_choices / total,
        "p_value": p,
        "min_votes": min_votes,
        "p_below": p_below,
    }
    return Finding(kinds=_kinds(config), facts=facts, evidence=evidence)


def straight_lining(ctx: Context) -> Finding | None:
    config, signal = ctx.config, ctx.signal
    run_at_least = int(config["run_at_least"])
    if ctx.history.open or signal.longest_run < run_at_least or not _fresh(ctx, run_at_least):
        return None
    choice = dict(Choice.choices).get(signal.longest_run_choice, signal.longest_run_choice or "the same answer")
    facts = (
        f"On study “{ctx.study.name}” you gave the same answer (“{choice}”) {signal.longest_run} times in a row. "
        f"Each pair needs its own judgement; we look at runs of {run_at_least} or more."
    )
    evidence = {"longest_run": signal.longest_run, "choice": signal.longest_run_choice, "run_at_least": run_at_least}
    return Finding(kinds=_kinds(config), facts=facts, evidence=evidence)


def low_agreement(ctx: Context) -> Finding | None:
    config, signal = ctx.config, ctx.signal
    min_votes, below = int(config["min_votes"]), float(config["below"])
    agreement = signal.agreement
    if ctx.history.open or signal.agreement_votes < min_votes or agreement is None or agreement >= below:
        return None
    if not _fresh(ctx, min_votes):
        return None
    facts = (
        f"On study “{ctx.study.name}”, on the {signal.agreement_votes} votes that other raters also gave, on average "
        f"{_pct(agreement)} of them chose the same answer as you; we look closer below {_pct(below)}. Disagreeing "
        "is not wrong in itself: staff read your votes before deciding anything."
    )
    evidence = {
        "agreement": agreement,
        "agreement_votes": signal.agreement_votes,
        "min_votes": min_votes,
        "below": below,
    }
    return Finding(kinds=_kinds(config), facts=facts, evidence=evidence)


RULES: dict[str, Callable[[Context], Finding | None]] = {
    "gold_accuracy": gold_accuracy,
    "too_fast": too_fast,
    "position_bias": position_bias,
    "straight_lining": straight_lining,
    "low_agreement": low_agreement,
}


# --- History of decisions -----------------------------------------------------------------------


def _decision_time(action: QualityAction) -> datetime:
    reversal = (action.detail or {}).get("reversal") or {}
    when = parse_datetime(reversal["at"]) if reversal.get("at") else None
    return when or action.decided_at or action.created_at


def _baseline_of(action: QualityAction, study_id: int) -> dict[str, int] | None:
    """The counts a decision saw (it cleared, dismissed or reversed on them), if it is one."""
    detail = action.detail or {}
    if action.kind == ActionKind.CLEAR and action.status == ActionStatus.APPLIED:
        baselines = detail.get("baseline") or {}
    elif action.status == ActionStatus.DISMISSED:
        baselines = (detail.get("dismissal") or {}).get("baseline") or {}
    elif action.status == ActionStatus.REVERSED:
        baselines = (detail.get("reversal") or {}).get("baseline") or {}
    else:
        return None
    return baselines.get(str(study_id)) or dict.fromkeys(services.SNAPSHOT_FIELDS, 0)


def history_of(rule: str, study_id: int, actions: list[QualityAction]) -> History:
    """What has been decided about `rule` for one rater on one study, from their actions there
    (and their rater-wide clears), oldest first."""
    history = History()
    clears = [a for a in actions if a.kind == ActionKind.CLEAR and a.status == ActionStatus.APPLIED]
    last_clear_id = max((a.pk for a in clears), default=0)
    decisions = [a for a in (*clears, *(a for a in actions if a.rule == rule)) if _baseline_of(a, study_id)]
    if decisions:
        latest = max(decisions, key=lambda a: (_decision_time(a), a.pk))
        history.baseline = _baseline_of(latest, study_id) or {}
        history.decided_at = _decision_time(latest)
    for action in actions:
        if action.rule != rule or action.kind == ActionKind.CLEAR:
            continue
        if action.status == ActionStatus.PROPOSED:
            history.pending = True
        elif action.status == ActionStatus.APPLIED and action.pk > last_clear_id:
            history.open.append(action)
    return history


# --- Evaluation ---------------------------------------------------------------------------------


def _signals(changed: dict[int, set[int]] | None) -> list[RaterSignal]:
    signals = RaterSignal.objects.filter(study__isnull=False).select_related("study", "rater__user")
    if changed is not None:
        scope = Q(pk__in=[])
        for study_id, rater_ids in changed.items():
            if rater_ids:
                scope |= Q(study_id=study_id, rater_id__in=list(rater_ids))
        signals = signals.filter(scope)
    return list(signals.order_by("study_id", "rater_id"))


def _actions_by_pair(signals: list[RaterSignal]) -> dict[tuple[int, int], list[QualityAction]]:
    raters = {signal.rater_id for signal in signals}
    studies = {signal.study_id for signal in signals}
    actions = QualityAction.objects.filter(
        Q(study_id__in=studies) | Q(study__isnull=True, kind=ActionKind.CLEAR), rater_id__in=raters
    ).order_by("pk")
    by_pair: dict[tuple[int, int], list[QualityAction]] = defaultdict(list)
    rater_wide: dict[int, list[QualityAction]] = defaultdict(list)
    for action in actions:
        if action.study_id is None:
            rater_wide[action.rater_id].append(action)
        else:
            by_pair[(action.rater_id, action.study_id)].append(action)
    return {
        (signal.rater_id, signal.study_id): sorted(
            [*by_pair.get((signal.rater_id, signal.study_id), []), *rater_wide.get(signal.rater_id, [])],
            key=lambda a: a.pk,
        )
        for signal in signals
    }


def rules_evaluate(*, changed: dict[int, set[int]] | None = None, now: datetime | None = None) -> list[QualityAction]:
    """Check every rule on the per-study signals and act on what fires; returns the new actions.

    `changed` is {study id: {rater profile id, ...}} — the signals a refresh just updated; None
    checks all of them. Safe to run again at any time: a finding already acted on is not repeated.
    """
    now = now or timezone.now()
    signals = _signals(changed)
    if not signals:
        return []
    study_signals = {s.study_id: s for s in StudySignal.objects.filter(study_id__in={x.study_id for x in signals})}
    actions = _actions_by_pair(signals)
    configs: dict[int, dict[str, dict[str, Any]]] = {}
    created: list[QualityAction] = []
    for signal in signals:
        study = signal.study
        if study.pk not in configs:
            configs[study.pk] = rules_for(study)
        for name, check in RULES.items():
            config = configs[study.pk].get(name)
            if not config or not _enabled(config):
                continue
            history = history_of(name, study.pk, actions[(signal.rater_id, study.pk)])
            if history.pending:
                continue
            finding = check(Context(signal, study, config, history, study_signals.get(study.pk)))
            if finding is None or not finding.kinds:
                continue
            try:
                created += _act(signal, study, name, config, finding, now)
            except ApplicationError:
                # One rater's refused action (a malformed study override, say) must not stop the others.
                logger.exception("Quality rule %s could not act on rater %s, study %s", name, signal.rater_id, study.pk)
    return created


def _act(
    signal: RaterSignal, study: Study, rule: str, config: dict[str, Any], finding: Finding, now: datetime
) -> list[QualityAction]:
    propose = config.get("mode", "propose") != "auto"  # anything but "auto" waits for staff
    consequences = " ".join(CONSEQUENCES[kind] for kind in finding.kinds)
    reason = f"{finding.facts} {consequences} {APPEAL_NOTE}"
    made = []
    for kind in finding.kinds:
        action = services.action_record(
            rater=signal.rater,
            study=study,
            kind=kind,
            rule=rule,
            reason=reason,
            evidence={**finding.evidence, "mode": "propose" if propose else "auto"},
            propose=propose,
            now=now,
        )
        if action is not None:
            made.append(action)
    return made
