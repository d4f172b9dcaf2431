"""Reads for studies: progress, the sampling report, and what a rater sees of a task."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from evaluations.models import Choice, ContentFlag, Study, System, Task, TaskStatus, Vote

PACE_WINDOW = timedelta(hours=1)


# --- Progress -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemVotes:
    name: str
    votes: int


@dataclass(frozen=True)
class CriterionVotes:
    name: str
    votes: int
    a: int
    b: int
    tie: int
    both_bad: int


@dataclass(frozen=True)
class Progress:
    status: str
    votes: int
    gold_votes: int
    target_votes: int
    completion: float
    systems: list[SystemVotes]
    criteria: list[CriterionVotes]
    open_leases: int
    skips: int
    flags: int
    votes_last_hour: int
    eta_seconds: int | None
    spent_cents: int
    budget_cents: int
    tasks_affordable: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def study_progress(study: Study, *, now: datetime | None = None) -> Progress:
    """Votes in total, per system and per criterion; completion; pace and ETA; budget."""
    now = now or timezone.now()
    study.refresh_from_db()
    pair_totals = study.pair_stats.aggregate(votes=Sum("votes"), slots=Sum("item_pairs_count"))
    votes = pair_totals["votes"] or 0
    target = (pair_totals["slots"] or 0) * study.votes_per_pair
    tasks = Task.objects.filter(study=study).aggregate(
        open_leases=Count("pk", filter=Q(status=TaskStatus.LEASED, expires_at__gt=now)),
        skips=Count("pk", filter=Q(status=TaskStatus.SKIPPED)),
    )
    recent = Vote.objects.filter(study=study, is_gold=False, created_at__gt=now - PACE_WINDOW).count()
    remaining = max(target - votes, 0)
    eta = round(remaining / recent * PACE_WINDOW.total_seconds()) if recent and remaining else None
    spent = study.votes_count * study.pay_per_task_cents
    return Progress(
        status=study.status,
        votes=votes,
        gold_votes=study.votes_count - votes,
        target_votes=target,
        completion=round(votes / target, 4) if target else 0.0,
        systems=[SystemVotes(s.name, s.votes_count) for s in System.objects.filter(study=study)],
        criteria=_criteria_votes(study),
        open_leases=tasks["open_leases"],
        skips=tasks["skips"],
        flags=ContentFlag.objects.filter(study=study).count(),
        votes_last_hour=recent,
        eta_seconds=eta,
        spent_cents=spent,
        budget_cents=study.budget_cents,
        tasks_affordable=max(study.budget_cents // study.pay_per_task_cents - study.votes_count, 0),
    )


def _criteria_votes(study: Study) -> list[CriterionVotes]:
    ordinary = Vote.objects.filter(study=study, is_gold=False)
    result = []
    for name in study.criterion_names:
        # KeyTextTransform, not a `criteria__<name>` lookup: criterion names may hold any character.
        counts = ordinary.annotate(answer=KeyTextTransform(name, "criteria")).aggregate(
            total=Count("pk", filter=Q(answer__isnull=False)),
            **{choice: Count("pk", filter=Q(answer=choice)) for choice in Choice.values},
        )
        result.append(CriterionVotes(name=name, votes=counts.pop("total"), **counts))
    return result


# --- Sampling report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemSampling:
    name: str
    battles: int
    votes: int
    share: float  # of all appearances that day (each battle has two): sums to 1 over systems
    mean_probability: float | None  # mean recorded probability of the pairs drawn that include it


@dataclass(frozen=True)
class DaySampling:
    date: date
    battles: int
    votes: int
    systems: list[SystemSampling]


@dataclass(frozen=True)
class PairSampling:
    system_a: str
    system_b: str
    battles: int
    votes: int
    mean_probability: float | None


@dataclass(frozen=True)
class SamplingReport:
    policy: str
    battles: int
    votes: int
    systems: list[SystemSampling]
    pairs: list[PairSampling]
    days: list[DaySampling]


def sampling_report(study: Study) -> SamplingReport:
    """How often each system and pair was drawn, overall and per day (UTC), with the recorded
    probabilities. A battle is a sampled task: it counts whether or not it was voted on."""
    names = dict(System.objects.filter(study=study).values_list("pk", "name"))
    rows = list(
        Task.objects.filter(study=study, is_gold=False)
        .annotate(day=TruncDate("leased_at"))
        .values("day", "item_pair__pair_stat__system_low", "item_pair__pair_stat__system_high")
        .annotate(
            battles=Count("pk"),
            votes=Count("pk", filter=Q(status=TaskStatus.SUBMITTED)),
            probability=Sum("sampling_probability"),
        )
        .order_by("day")
    )
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_day[row["day"]].append(row)
    return SamplingReport(
        policy=study.sampling,
        battles=sum(row["battles"] for row in rows),
        votes=sum(row["votes"] for row in rows),
        systems=_systems_sampling(rows, names),
        pairs=_pairs_sampling(rows, names),
        days=[
            DaySampling(
                date=day,
                battles=sum(row["battles"] for row in day_rows),
                votes=sum(row["votes"] for row in day_rows),
                systems=_systems_sampling(day_rows, names),
            )
            for day, day_rows in sorted(by_day.items())
        ],
    )


def _systems_sampling(rows: list[dict[str, Any]], names: dict[int, str]) -> list[SystemSampling]:
    totals: dict[int, list[float]] = {pk: [0, 0, 0.0] for pk in names}
    for row in rows:
        for key in ("item_pair__pair_stat__system_low", "item_pair__pair_stat__system_high"):
            entry = totals[row[key]]
            entry[0] += row["battles"]
            entry[1] += row["votes"]
            entry[2] += row["probability"] or 0.0
    appearances = sum(entry[0] for entry in totals.values())
    return [
        SystemSampling(
            name=names[pk],
            battles=int(battles),
            votes=int(votes),
            share=round(battles / appearances, 4) if appearances else 0.0,
            mean_probability=round(probability / battles, 4) if battles else None,
        )
        for pk, (battles, votes, probability) in totals.items()
    ]


def _pairs_sampling(rows: list[dict[str, Any]], names: dict[int, str]) -> list[PairSampling]:
    totals: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        entry = totals[(row["item_pair__pair_stat__system_low"], row["item_pair__pair_stat__system_high"])]
        entry[0] += row["battles"]
        entry[1] += row["votes"]
        entry[2] += row["probability"] or 0.0
    return [
        PairSampling(
            system_a=names[low],
            system_b=names[high],
            battles=int(battles),
            votes=int(votes),
            mean_probability=round(probability / battles, 4) if battles else None,
        )
        for (low, high), (battles, votes, probability) in sorted(totals.items())
    ]


# --- What a rater sees --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskView:
    """A task as the rater sees it: no system names, providers, or ids that could reveal them."""

    id: str
    study: str
    question: str
    prompt: list[dict[str, str]]
    prompt_html: str
    response_a: list[dict[str, str]]
    response_a_html: str
    response_b: list[dict[str, str]]
    response_b_html: str
    criteria: list[dict[str, str]]
    choices: list[dict[str, str]]
    leased_at: datetime
    expires_at: datetime


def task_view(task: Task) -> TaskView:
    task = (
        Task.objects.select_related("study", "item_pair__item", "response_a", "response_b").get(pk=task.pk)
        if not _loaded(task)
        else task
    )
    item = task.item_pair.item
    return TaskView(
        id=str(task.pk),
        study=task.study.name,
        question=task.study.question,
        prompt=item.prompt,
        prompt_html=item.prompt_html,
        response_a=task.response_a.content,
        response_a_html=task.response_a.content_html,
        response_b=task.response_b.content,
        response_b_html=task.response_b.content_html,
        criteria=task.study.criteria,
        choices=[{"value": value, "label": label} for value, label in Choice.choices],
        leased_at=task.leased_at,
        expires_at=task.expires_at,
    )


def _loaded(task: Task) -> bool:
    cache = task._state.fields_cache
    return all(name in cache for name in ("study", "item_pair", "response_a", "response_b")) and (
        "item" in task.item_pair._state.fields_cache
    )


def rater_task_counts(rater_id: int) -> dict[str, int]:
    """The rater's own tally: votes, skips, and votes today (UTC)."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return Task.objects.filter(rater_id=rater_id).aggregate(
        votes=Count("pk", filter=Q(status=TaskStatus.SUBMITTED)),
        votes_today=Count("pk", filter=Q(status=TaskStatus.SUBMITTED, finished_at__gte=today)),
        skips=Count("pk", filter=Q(status=TaskStatus.SKIPPED)),
    )
