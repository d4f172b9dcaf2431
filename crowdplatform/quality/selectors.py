"""What the quality pages show: the staff review queue, one rater's evidence, and a rater's own page.

Raters are shown their own figures and the thresholds that apply to them, never anyone else's; the
evidence for staff names responses only as the rater saw them (left A / right B, or a gold item's
own labels), never the systems behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Prefetch, Q
from django.utils import timezone

from crowdplatform.quality.models import (
    ActionKind,
    ActionStatus,
    AppealStatus,
    QualityAction,
    QualityAppeal,
    RaterSignal,
    RaterStudyPause,
    StudySignal,
)
from crowdplatform.quality.rules import CONSEQUENCES, rules_for
from crowdplatform.raters.models import RaterProfile
from evaluations.models import Choice, Study, Vote
from payments.models import EarningStatus

RECENT_DAYS = 14  # automatic actions stay in the queue this long, for staff to look at
QUEUE_LIMIT = 100
VOTE_SAMPLE = 20
GOLD_MISTAKES = 20
EXCERPT_CHARS = 200
CHOICE_WORDS = {Choice.A: "A (left)", Choice.B: "B (right)", Choice.TIE: "Tie", Choice.BOTH_BAD: "Both are bad"}
RULE_TITLES = {
    "gold_accuracy": "Gold questions",
    "too_fast": "Speed",
    "position_bias": "Left/right balance",
    "straight_lining": "Same answer in a row",
    "low_agreement": "Agreement with other raters",
}


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def prompt_excerpt(prompt: Any) -> str:
    """The first user turn of a prompt ([{role, content}]), shortened."""
    if isinstance(prompt, list):
        turns = [turn for turn in prompt if isinstance(turn, dict)]
        user = next((turn for turn in turns if turn.get("role") == "user"), turns[0] if turns else {})
        return excerpt(str(user.get("content", "")))
    return excerpt(str(prompt or ""))


# --- Thresholds in words ------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    rule: str
    title: str
    words: str
    consequence: str
    automatic: bool


def _threshold_words(name: str, config: dict[str, Any]) -> str:
    if name == "gold_accuracy":
        below = round(float(config["below"]) * 100)
        return f"Fewer than {below}% right after at least {config['min_gold']} gold questions."
    if name == "too_fast":
        return (
            f"At least {config['min_fast']} votes more than {float(config['sd']):g} standard deviations faster than "
            "the study's typical time per vote (on a log scale, as task times are skewed)."
        )
    if name == "position_bias":
        return (
            f"After at least {config['min_votes']} votes, choosing one side far more often than the other (a split "
            f"that chance explains less than {float(config['p_below']) * 100:g}% of the time)."
        )
    if name == "straight_lining":
        return f"The same answer {config['run_at_least']} or more times in a row."
    if name == "low_agreement":
        return (
            f"After at least {config['min_votes']} votes shared with other raters, fewer than "
            f"{round(float(config['below']) * 100)}% of them agreeing with you on average."
        )
    return ""


def thresholds_for(study: Study) -> list[Threshold]:
    """The rules that apply on a study, in words a rater can check themselves against."""
    result = []
    for name, config in rules_for(study).items():
        if config.get("enabled", True) is False or name not in RULE_TITLES:
            continue
        kinds = [CONSEQUENCES[k] for k in config.get("actions", []) if k in CONSEQUENCES]
        repeat = [CONSEQUENCES[k] for k in config.get("repeat_actions", []) if k in CONSEQUENCES]
        consequence = " ".join(kinds)
        if repeat:
            consequence += " If it happens again after that: " + " ".join(repeat)
        automatic = config.get("mode") == "auto"
        if not automatic:
            consequence = "Staff review your votes first. " + consequence
        result.append(Threshold(name, RULE_TITLES[name], _threshold_words(name, config), consequence, automatic))
    return result


# --- Per-study figures ----------------------------------------------------------------------------


@dataclass
class StudyFigures:
    study: Study
    signal: RaterSignal
    study_signal: StudySignal | None
    paused: bool
    thresholds: list[Threshold] = field(default_factory=list)

    @property
    def speed_typical(self) -> float | None:
        return self.study_signal.speed_typical_seconds if self.study_signal else None

    @property
    def speed_log_sd(self) -> float | None:
        return self.study_signal.speed_log_sd if self.study_signal else None


def _study_figures(profile: RaterProfile, *, with_thresholds: bool) -> list[StudyFigures]:
    signals = list(
        RaterSignal.objects.filter(rater=profile, study__isnull=False).select_related("study").order_by("study__name")
    )
    study_ids = [signal.study_id for signal in signals]
    study_signals = {s.study_id: s for s in StudySignal.objects.filter(study_id__in=study_ids)}
    paused = set(
        RaterStudyPause.objects.filter(rater=profile, lifted_at__isnull=True).values_list("study_id", flat=True)
    )
    return [
        StudyFigures(
            study=signal.study,
            signal=signal,
            study_signal=study_signals.get(signal.study_id),
            paused=signal.study_id in paused,
            thresholds=thresholds_for(signal.study) if with_thresholds else [],
        )
        for signal in signals
    ]


def _overall(profile: RaterProfile) -> RaterSignal | None:
    return RaterSignal.objects.filter(rater=profile, study__isnull=True).first()


def _actions(profile: RaterProfile) -> list[QualityAction]:
    return list(
        QualityAction.objects.filter(rater=profile)
        .select_related("study", "created_by", "decided_by")
        .prefetch_related(Prefetch("appeals", queryset=QualityAppeal.objects.order_by("-created_at", "-id")))
        .order_by("-created_at", "-id")
    )


# --- Staff: the review queue ----------------------------------------------------------------------


@dataclass
class QueueRow:
    profile: RaterProfile
    proposed: int
    recent_automatic: int
    open_appeals: int
    latest_at: datetime
    rules: list[str]
    overall: RaterSignal | None
    signals: list[RaterSignal]


def staff_queue(*, now: datetime | None = None, limit: int = QUEUE_LIMIT) -> list[QueueRow]:
    """Raters with proposals waiting, automatic actions of the last `RECENT_DAYS` days, or open
    appeals: newest first, each with their latest signals."""
    now = now or timezone.now()
    since = now - timedelta(days=RECENT_DAYS)
    waiting = Q(status=ActionStatus.PROPOSED) | Q(
        status=ActionStatus.APPLIED, created_by__isnull=True, created_at__gte=since
    )
    rows: dict[int, dict[str, Any]] = {}
    for row in (
        QualityAction.objects.filter(waiting)
        .values("rater_id")
        .annotate(
            latest=Max("created_at"),
            proposed=Count("pk", filter=Q(status=ActionStatus.PROPOSED)),
            automatic=Count("pk", filter=Q(status=ActionStatus.APPLIED)),
        )
        .order_by()
    ):
        rows[row["rater_id"]] = {**row, "appeals": 0}
    for row in (
        QualityAppeal.objects.filter(status=AppealStatus.OPEN)
        .values("rater_id")
        .annotate(latest=Max("created_at"), n=Count("pk"))
        .order_by()
    ):
        entry = rows.setdefault(
            row["rater_id"], {"rater_id": row["rater_id"], "latest": row["latest"], "proposed": 0, "automatic": 0}
        )
        entry["appeals"] = row["n"]
        entry["latest"] = max(entry["latest"], row["latest"])
    chosen = sorted(rows.values(), key=lambda r: (r["latest"], r["rater_id"]), reverse=True)[:limit]
    ids = [row["rater_id"] for row in chosen]
    profiles = RaterProfile.objects.select_related("user").in_bulk(ids)
    signals: dict[int, list[RaterSignal]] = {}
    overall: dict[int, RaterSignal] = {}
    for signal in RaterSignal.objects.filter(rater_id__in=ids).select_related("study").order_by("study__name"):
        if signal.study_id is None:
            overall[signal.rater_id] = signal
        else:
            signals.setdefault(signal.rater_id, []).append(signal)
    rules: dict[int, set[str]] = {}
    for rater_id, rule in QualityAction.objects.filter(waiting, rater_id__in=ids).values_list("rater_id", "rule"):
        rules.setdefault(rater_id, set()).add(rule or "staff")
    return [
        QueueRow(
            profile=profiles[row["rater_id"]],
            proposed=row["proposed"],
            recent_automatic=row["automatic"],
            open_appeals=row["appeals"],
            latest_at=row["latest"],
            rules=sorted(RULE_TITLES.get(rule, rule) for rule in rules.get(row["rater_id"], set())),
            overall=overall.get(row["rater_id"]),
            signals=signals.get(row["rater_id"], []),
        )
        for row in chosen
    ]


# --- Staff: one rater's evidence ------------------------------------------------------------------


@dataclass(frozen=True)
class GoldMistake:
    created_at: datetime
    study_name: str
    prompt: str
    chosen: str  # the response label the rater picked, or Tie / Both are bad
    right: str  # the gold answer


@dataclass(frozen=True)
class VoteRow:
    task_id: str
    created_at: datetime
    study_name: str
    seconds: float
    choice: str
    rationale: str
    is_gold: bool
    gold_correct: bool | None
    quality_status: str
    quality_reason: str
    pay_status: str
    rejectable: bool


@dataclass
class RaterEvidence:
    profile: RaterProfile
    overall: RaterSignal | None
    studies: list[StudyFigures]
    gold_mistakes: list[GoldMistake]
    votes: list[VoteRow]
    actions: list[QualityAction]
    open_appeals: list[QualityAppeal]


def _label(vote: Vote, choice: str) -> str:
    """The label of the response a gold vote chose (a gold item's own label, never a system)."""
    response = vote.task.response_a if choice == Choice.A else vote.task.response_b if choice == Choice.B else None
    if response is None:
        return CHOICE_WORDS.get(choice, choice)
    side = CHOICE_WORDS[choice]
    return f"“{response.label}” ({side})" if response.system_id is None else side


def _gold_answer(answer: str) -> str:
    return CHOICE_WORDS[answer] if answer in (Choice.TIE, Choice.BOTH_BAD) else f"“{answer}”"


def gold_mistakes(profile: RaterProfile, limit: int = GOLD_MISTAKES) -> list[GoldMistake]:
    votes = (
        Vote.objects.filter(rater=profile, is_gold=True, gold_correct=False)
        .select_related("study", "item", "task__response_a", "task__response_b")
        .defer(
            *(f"task__{side}__{name}" for side in ("response_a", "response_b") for name in ("content", "content_html"))
        )
        .order_by("-created_at", "-id")[:limit]
    )
    return [
        GoldMistake(
            created_at=vote.created_at,
            study_name=vote.study.name,
            prompt=prompt_excerpt(vote.item.prompt),
            chosen=_label(vote, vote.choice),
            right=_gold_answer(vote.item.gold_answer),
        )
        for vote in votes
    ]


def vote_sample(profile: RaterProfile, limit: int = VOTE_SAMPLE) -> list[VoteRow]:
    votes = (
        Vote.objects.filter(rater=profile)
        .select_related("study", "earning")
        .only(
            "task_id",
            "created_at",
            "study__name",
            "duration_ms",
            "choice",
            "rationale",
            "is_gold",
            "gold_correct",
            "quality_status",
            "quality_reason",
            "earning__status",
        )
        .order_by("-created_at", "-id")[:limit]
    )
    rows = []
    for vote in votes:
        earning = getattr(vote, "earning", None)
        rows.append(
            VoteRow(
                task_id=str(vote.task_id),
                created_at=vote.created_at,
                study_name=vote.study.name,
                seconds=vote.duration_ms / 1000,
                choice=CHOICE_WORDS.get(vote.choice, vote.choice),
                rationale=excerpt(vote.rationale, 160),
                is_gold=vote.is_gold,
                gold_correct=vote.gold_correct,
                quality_status=vote.quality_status,
                quality_reason=vote.quality_reason,
                pay_status=earning.get_status_display() if earning else "—",
                rejectable=earning is not None and earning.status in (EarningStatus.PENDING, EarningStatus.HELD),
            )
        )
    return rows


def rater_evidence(*, profile: RaterProfile) -> RaterEvidence:
    actions = _actions(profile)
    return RaterEvidence(
        profile=profile,
        overall=_overall(profile),
        studies=_study_figures(profile, with_thresholds=True),
        gold_mistakes=gold_mistakes(profile),
        votes=vote_sample(profile),
        actions=actions,
        open_appeals=[appeal for action in actions for appeal in action.appeals.all() if appeal.status == "open"],
    )


# --- The rater's own page -------------------------------------------------------------------------


@dataclass
class ActionRow:
    action: QualityAction
    appeal: QualityAppeal | None  # the latest
    appealable: bool
    appeal_on_earnings: bool


@dataclass
class RaterQuality:
    overall: RaterSignal | None
    studies: list[StudyFigures]
    actions: list[ActionRow]


def rater_quality(*, profile: RaterProfile) -> RaterQuality:
    """Everything quality knows about the rater, for the rater: their figures per study, the
    thresholds that apply there, and every action with its reason."""
    from crowdplatform.quality.services import APPEALABLE_KINDS

    rows = []
    for action in _actions(profile):
        appeals = list(action.appeals.all())
        latest = appeals[0] if appeals else None
        in_force = action.status == ActionStatus.APPLIED
        rows.append(
            ActionRow(
                action=action,
                appeal=latest,
                appealable=in_force and action.kind in APPEALABLE_KINDS and latest is None,
                appeal_on_earnings=in_force and action.kind == ActionKind.REJECT_PAY,
            )
        )
    return RaterQuality(overall=_overall(profile), studies=_study_figures(profile, with_thresholds=True), actions=rows)


# --- A study's quality, for its client and staff ----------------------------------------------------


def _alpha_words(alpha: float | None) -> str:
    """Krippendorff's own reading of alpha: >= 0.8 reliable, >= 0.667 tentative conclusions only."""
    if alpha is None:
        return "not enough overlapping votes yet"
    if alpha >= 0.8:
        return "reliable agreement"
    if alpha >= 0.667:
        return "tentative: good enough for tentative conclusions only"
    return "low agreement: the criterion may be unclear or the raters may disagree on it"


def study_quality(*, study: Study) -> dict[str, Any]:
    """Inter-rater agreement (overall and per criterion), gold accuracy across raters, flags and
    excluded votes: what the study page and `GET /api/v1/studies/{id}/quality/` show."""
    signal = StudySignal.objects.filter(study=study).first()
    if signal is None:
        return {
            "refreshed_at": None,
            "votes": 0,
            "alpha": None,
            "alpha_meaning": _alpha_words(None),
            "alpha_by_criterion": {},
            "gold_accuracy_histogram": [],
            "flags": 0,
            "excluded": {},
            "speed_typical_seconds": None,
        }
    return {
        "refreshed_at": signal.refreshed_at,
        "votes": signal.votes,
        "alpha": signal.alpha,
        "alpha_meaning": _alpha_words(signal.alpha),
        "alpha_by_criterion": signal.alpha_by_criterion,
        "gold_accuracy_histogram": signal.gold_accuracy_histogram,
        "flags": signal.flags,
        "excluded": signal.excluded,
        "speed_typical_seconds": signal.speed_typical_seconds,
    }
