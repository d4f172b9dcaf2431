"""Refresh the stored quality signals (RaterSignal, StudySignal) from the votes.

`signals_refresh()` is incremental by default: it refreshes only the studies that got votes (or
skips) since their watermark. A refreshed study is recomputed whole, from one query that loads its
votes as integer arrays (`_study_arrays`), because most signals depend on the whole study anyway:
the speed threshold on every vote's time, agreement on the other raters of the same item pairs,
alpha on all overlapping votes. Computing everything from the same arrays makes an incremental
refresh give exactly the rows a full one gives, and makes each study's refresh idempotent. Only the
rows whose values changed are written, and `RefreshReport.changed` names those raters: the rules
engine looks at them only.

Dawid-Skene and Noisy Bradley-Terry are batch models over the whole study and cost seconds on large
studies: an incremental refresh runs them only on studies up to `MODELS_INCREMENTAL_MAX_VOTES` votes
and otherwise keeps the last estimates; a full refresh (`full=True`; the Celery task runs one every
`FULL_REFRESH_SECONDS`) runs them on every study.

Queries: a handful per refreshed study (the arrays, skips, the stored rows, the writes) plus a few for
the whole refresh; never one per vote or per rater.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, CharField, Count, IntegerField, Max, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from crowdplatform.quality import signals
from crowdplatform.quality.models import RaterSignal, StudySignal
from evaluations.models import ContentFlag, QualityStatus, Study, Task, TaskStatus, Vote

log = logging.getLogger(__name__)

# Votes younger than this may still be committing with a smaller id than a committed one: the
# watermark stays behind them, so the next refresh looks at them again (a refresh is idempotent).
SETTLE_SECONDS = 60
# Dawid-Skene / Noisy BT on incremental refreshes only up to this many votes per study (about 1 s).
MODELS_INCREMENTAL_MAX_VOTES = 50_000
# A rater's model-based skill needs this many of their votes in the study to mean anything.
MODEL_MIN_RATER_VOTES = 5
DS_MAX_ITERATIONS = 30
NBT_MAX_ITERATIONS = 100
SPEED_MIN_VOTES = 10
SKILL_DECIMALS = 4  # model estimates move a little on every fit: rounding avoids rewriting every row
WRITE_BATCH = 1000
LOCK_KEY = 0x5157_414C  # "QUAL": one refresh at a time (PostgreSQL advisory lock)

# The stored per-rater values, in the order `_row_values` compares them.
SIGNAL_FIELDS = (
    "votes",
    "skips",
    "gold_votes",
    "gold_correct",
    "gold_wilson_low",
    "gold_wilson_high",
    "agreement_votes",
    "agreement",
    "a_choices",
    "b_choices",
    "position_p_value",
    "median_seconds",
    "fast_votes",
    "fast_threshold_seconds",
    "longest_run",
    "longest_run_choice",
    "ds_skill",
    "nbt_skill",
)
CHOICE_NAMES = {code: name for name, code in signals.CHOICE_CODES.items()}


@dataclass
class RefreshReport:
    """What a refresh did. `changed`: study id -> rater profile ids whose signals on it changed."""

    changed: dict[int, set[int]] = field(default_factory=dict)
    full: bool = False
    studies: int = 0
    votes: int = 0
    rows_written: int = 0
    models_run: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for the benchmark

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started


def signals_refresh(
    *, study: Study | int | None = None, full: bool = False, now: datetime | None = None
) -> RefreshReport:
    """Refresh the quality signals; only `study` if given. Incremental unless `full`."""
    started = time.perf_counter()
    now = now or timezone.now()
    report = RefreshReport(full=full)
    only = None if study is None else int(getattr(study, "pk", study))
    with _refresh_lock():
        with report.phase("queries"):
            due = _studies_due(only=only, full=full)
        for study_id in due:
            _study_refresh(study_id=study_id, full=full, now=now, report=report)
        _overall_refresh(raters=set().union(*report.changed.values()), now=now, report=report)
        _study_summaries_refresh(only=only, now=now, report=report)
    report.studies = len(due)
    report.seconds = time.perf_counter() - started
    return report


# --- Which studies ------------------------------------------------------------------------------------


def _studies_due(*, only: int | None, full: bool) -> list[int]:
    """The studies to refresh: all with votes or skips (full), or those with any since their watermark."""
    studies = Study.objects.all() if only is None else Study.objects.filter(pk=only)
    if full:
        active = Q(votes_count__gt=0) | Q(pk__in=Task.objects.filter(status=TaskStatus.SKIPPED).values("study_id"))
        return sorted(studies.filter(active).values_list("pk", flat=True))
    marks = {
        study_id: (watermark, refreshed_at)
        for study_id, watermark, refreshed_at in StudySignal.objects.filter(study__in=studies.values("pk")).values_list(
            "study_id", "watermark_vote_id", "refreshed_at"
        )
    }
    due = set(studies.filter(votes_count__gt=0).exclude(pk__in=list(marks)).values_list("pk", flat=True))
    # New votes: the primary key index answers `id > lowest watermark` without reading older votes.
    lowest = min((watermark for watermark, _ in marks.values()), default=0)
    newest = (
        Vote.objects.filter(id__gt=lowest, study__in=studies.values("pk")).values("study_id").annotate(newest=Max("id"))
    )
    due |= {row["study_id"] for row in newest if row["newest"] > marks.get(row["study_id"], (0, None))[0]}
    # New skips: tasks carry no id order, so their finish time against the last refresh (less the
    # settling time, as for votes).
    skipped = Task.objects.filter(status=TaskStatus.SKIPPED, study__in=studies.values("pk"))
    oldest = min((at for _, at in marks.values() if at is not None), default=None)
    if oldest is not None:
        skipped = skipped.filter(finished_at__gt=oldest - timedelta(seconds=SETTLE_SECONDS))
    for study_id, latest in (
        skipped.values("study_id").annotate(latest=Max("finished_at")).values_list("study_id", "latest")
    ):
        refreshed_at = marks.get(study_id, (0, None))[1]
        if refreshed_at is None or latest > refreshed_at - timedelta(seconds=SETTLE_SECONDS):
            due.add(study_id)
    return sorted(due)


# --- One study ----------------------------------------------------------------------------------------


@dataclass
class StudyArrays:
    """A study's votes as integer arrays, in time order (created_at, id)."""

    rater: np.ndarray
    unit: np.ndarray  # item pair
    choice: np.ndarray  # as shown: signals.CHOICE_*
    label: np.ndarray  # mapped to the item pair: signals.LABEL_NAMES
    gold: np.ndarray  # -1 not gold, 0 wrong, 1 right
    seconds: np.ndarray
    system_a: np.ndarray  # 0 on gold
    system_b: np.ndarray
    criteria: dict[str, np.ndarray]  # criterion -> labels, -1 where not given

    @property
    def size(self) -> int:
        return int(self.rater.size)


def _study_refresh(*, study_id: int, full: bool, now: datetime, report: RefreshReport) -> None:
    with transaction.atomic():
        with report.phase("queries"):
            study = Study.objects.get(pk=study_id)
            summary, _ = StudySignal.objects.select_for_update().get_or_create(study_id=study_id)
            arrays = _study_arrays(study)
            skips = dict(
                Task.objects.filter(study_id=study_id, status=TaskStatus.SKIPPED)
                .values_list("rater_id")
                .annotate(n=Count("id"))
                .values_list("rater_id", "n")
            )
            stored = {row.rater_id: row for row in RaterSignal.objects.filter(study_id=study_id)}
            settled = Vote.objects.filter(
                study_id=study_id, created_at__lte=now - timedelta(seconds=SETTLE_SECONDS)
            ).aggregate(newest=Max("id"))["newest"]
        report.votes += arrays.size
        with report.phase("numpy"):
            rows, speed = _rater_rows(arrays, skips=skips, sd=_speed_sd(study))
        run_models = full or arrays.size <= MODELS_INCREMENTAL_MAX_VOTES
        if run_models:
            _models_apply(arrays, rows, report=report)
            report.models_run += 1
        else:
            for rater_id, values in rows.items():  # keep the last full refresh's estimates
                old = stored.get(rater_id)
                values["ds_skill"] = old.ds_skill if old else None
                values["nbt_skill"] = old.nbt_skill if old else None
        with report.phase("writing"):
            changed = _rater_rows_write(study_id=study_id, rows=rows, stored=stored, now=now, report=report)
        if changed:
            report.changed[study_id] = changed
        with report.phase("numpy"):
            summary.votes = arrays.size
            summary.alpha = signals.krippendorff_alpha_nominal(unit=arrays.unit, label=arrays.label)
            summary.alpha_by_criterion = {
                name: signals.krippendorff_alpha_nominal(unit=arrays.unit, label=labels)
                for name, labels in arrays.criteria.items()
            }
            summary.gold_accuracy_histogram = _gold_histogram(rows.values())
            summary.speed_typical_seconds = speed.typical
            summary.speed_log_sd = speed.log_sd
        with report.phase("writing"):
            # Never move the watermark back (a full refresh of a quiet study finds no settled vote).
            summary.watermark_vote_id = max(summary.watermark_vote_id if not full else 0, settled or 0)
            summary.refreshed_at = now
            summary.save()


def _study_arrays(study: Study) -> StudyArrays:
    """One query: the study's votes as integers (codes computed by the database), in time order.

    Built with the ORM (portable across PostgreSQL and SQLite) and run on a plain cursor: Django's
    per-row machinery costs more than the query at a million rows."""
    choice = Case(
        *(When(choice=name, then=Value(code)) for name, code in signals.CHOICE_CODES.items()),
        default=Value(-1),
        output_field=IntegerField(),
    )
    criteria = {f"criterion_{index}": name for index, name in enumerate(study.criterion_names)}
    queryset = (
        # No join with the tasks: the vote carries its item, its systems and `swapped` (denormalised).
        Vote.objects.filter(study_id=study.pk)
        # Cast: a plain text comparison (a lookup on the JSON key itself would compare JSON values).
        .alias(**{alias: Cast(KeyTextTransform(name, "criteria"), CharField()) for alias, name in criteria.items()})
        .annotate(
            choice_code=choice,
            swapped_code=Case(When(swapped=True, then=Value(1)), default=Value(0), output_field=IntegerField()),
            gold_code=Case(
                When(is_gold=False, then=Value(-1)),
                When(gold_correct=True, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
            system_a_code=Coalesce("system_a_id", Value(0)),
            system_b_code=Coalesce("system_b_id", Value(0)),
            **{
                f"{alias}_code": Case(
                    *(When(**{alias: name}, then=Value(code)) for name, code in signals.CHOICE_CODES.items()),
                    default=Value(-1),
                    output_field=IntegerField(),
                )
                for alias in criteria
            },
        )
        .order_by("created_at", "id")
        .values_list(
            "rater_id",
            "item_id",
            "choice_code",
            "swapped_code",
            "gold_code",
            "duration_ms",
            "system_a_code",
            "system_b_code",
            *(f"{alias}_code" for alias in criteria),
        )
    )
    width = 8 + len(criteria)
    table = _int_table(queryset, width=width)
    swapped = table[:, 3]
    return StudyArrays(
        rater=table[:, 0],
        unit=_pair_units(item=table[:, 1], system_a=table[:, 6], system_b=table[:, 7]),
        choice=table[:, 2],
        label=signals.labels_from_choices(choices=table[:, 2], swapped=swapped),
        gold=table[:, 4],
        seconds=table[:, 5] / 1000.0,
        system_a=table[:, 6],
        system_b=table[:, 7],
        criteria={
            name: signals.labels_from_choices(choices=table[:, 8 + index], swapped=swapped)
            for index, name in enumerate(criteria.values())
        },
    )


def _int_table(queryset: Any, *, width: int) -> np.ndarray:
    """Run a values_list of `width` integer columns (ordered) and return it as an (n, width) array.

    On PostgreSQL the rows come back as one bytea of big-endian int4s, built by the database in the
    query's order (string_agg ... ORDER BY): a quarter million rows cost a few milliseconds to decode
    instead of the driver's and numpy's per-row work. Elsewhere (SQLite) a plain fetch."""
    if connection.vendor != "postgresql":
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return np.array(rows, dtype=np.int64).reshape(len(rows), width)
    order = list(queryset.query.order_by)
    keys = list(queryset._fields)
    names = [*keys, *(name.lstrip("-") for name in order if name.lstrip("-") not in keys)]
    # Django (5.2) emits a values_list's columns in its own order: name each column of the subquery.
    inner = queryset.order_by().values_list(*names)
    columns = [f"c{index}" for index in range(len(names))]
    position = dict(zip(names, columns, strict=True))
    packed = " || ".join(f"int4send(sub.{position[key]}::int4)" for key in keys)
    ordering = ", ".join(f"sub.{position[name.lstrip('-')]}{' DESC' if name.startswith('-') else ''}" for name in order)
    sql, params = inner.query.sql_with_params()
    wrapped = f"SELECT string_agg({packed}, ''::bytea ORDER BY {ordering}) FROM ({sql}) AS sub({', '.join(columns)})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(wrapped, params)
        data = cursor.fetchone()[0]
    if data is None:
        return np.zeros((0, width), dtype=np.int64)
    return np.frombuffer(bytes(data), dtype=">i4").astype(np.int64).reshape(-1, width)


def _pair_units(*, item: np.ndarray, system_a: np.ndarray, system_b: np.ndarray) -> np.ndarray:
    """One integer per item pair, from the vote alone: an item has one response per system (a gold item
    exactly two, without systems, so one pair), so (item, lower system, higher system) names the pair.
    Only equality matters (units group votes), not the values."""
    if item.size == 0:
        return item
    _, systems = np.unique(np.r_[system_a, system_b], return_inverse=True)
    systems = systems.ravel()
    a, b = systems[: item.size], systems[item.size :]
    width = int(systems.max()) + 1
    return (item * width + np.minimum(a, b)) * width + np.maximum(a, b)


def _speed_sd(study: Study) -> float:
    """How many SDs below the typical time is "exceptionally fast": the study's rule, else the platform's."""
    from crowdplatform.quality.rules import rules_for

    return float(rules_for(study).get("too_fast", {}).get("sd", settings.QUALITY_RULES_DEFAULT["too_fast"]["sd"]))


def _rater_rows(
    arrays: StudyArrays, *, skips: dict[int, int], sd: float
) -> tuple[dict[int, dict[str, Any]], signals.Speed]:
    """Every rater's signal values on the study, from the arrays (no database)."""
    speed = signals.speed_threshold(seconds=arrays.seconds, sd=sd, min_votes=SPEED_MIN_VOTES)
    raters, index = np.unique(arrays.rater, return_inverse=True)
    index = index.ravel()

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=mask, minlength=raters.size).astype(np.int64)

    votes = np.bincount(index, minlength=raters.size)
    gold_votes, gold_correct = count(arrays.gold >= 0), count(arrays.gold == 1)
    low, high = signals.wilson_interval(successes=gold_correct, trials=gold_votes)
    _, agreement_votes, agreement = signals.group_agreement(group=arrays.rater, unit=arrays.unit, label=arrays.label)
    a_choices, b_choices = count(arrays.choice == signals.CHOICE_A), count(arrays.choice == signals.CHOICE_B)
    p_values = signals.binomial_p_values(successes=a_choices, trials=a_choices + b_choices)
    _, medians = signals.group_medians(group=arrays.rater, values=arrays.seconds)
    fast = count(arrays.seconds < speed.threshold) if speed.threshold is not None else np.zeros(raters.size, int)
    _, run_lengths, run_choices = signals.longest_runs(group=arrays.rater, values=arrays.choice)
    rows: dict[int, dict[str, Any]] = {}
    for i, rater_id in enumerate(raters.tolist()):
        rows[rater_id] = {
            "votes": int(votes[i]),
            "skips": skips.get(rater_id, 0),
            "gold_votes": int(gold_votes[i]),
            "gold_correct": int(gold_correct[i]),
            "gold_wilson_low": _float(low[i]),
            "gold_wilson_high": _float(high[i]),
            "agreement_votes": int(agreement_votes[i]),
            "agreement": _float(agreement[i]),
            "a_choices": int(a_choices[i]),
            "b_choices": int(b_choices[i]),
            "position_p_value": _float(p_values[i]),
            "median_seconds": _float(medians[i]),
            "fast_votes": int(fast[i]),
            "fast_threshold_seconds": speed.threshold,
            "longest_run": int(run_lengths[i]),
            "longest_run_choice": CHOICE_NAMES.get(int(run_choices[i]), ""),
            "ds_skill": None,
            "nbt_skill": None,
        }
    for rater_id, skipped in skips.items():  # raters who only skipped
        rows.setdefault(rater_id, _empty_row(skips=skipped, threshold=speed.threshold))
    return rows, speed


def _empty_row(*, skips: int, threshold: float | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SIGNAL_FIELDS)
    row.update(
        votes=0, skips=skips, gold_votes=0, gold_correct=0, agreement_votes=0, a_choices=0, b_choices=0, fast_votes=0
    )
    row.update(longest_run=0, longest_run_choice="", fast_threshold_seconds=threshold)
    return row


def _float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _models_apply(arrays: StudyArrays, rows: dict[int, dict[str, Any]], *, report: RefreshReport) -> None:
    """Dawid-Skene and Noisy Bradley-Terry skills, for raters with enough votes in the study."""
    with report.phase("dawid_skene"):
        ds = signals.dawid_skene_skills(
            task=arrays.unit, worker=arrays.rater, label=arrays.label, n_iter=DS_MAX_ITERATIONS
        )
    with report.phase("noisy_bt"):
        sided = (arrays.gold < 0) & (arrays.choice <= signals.CHOICE_B)
        winner = np.where(arrays.choice == signals.CHOICE_A, arrays.system_a, arrays.system_b)
        nbt = signals.noisy_bt_skills(
            worker=arrays.rater[sided],
            left=arrays.system_a[sided],
            right=arrays.system_b[sided],
            winner=winner[sided],
            n_iter=NBT_MAX_ITERATIONS,
        )
    for rater_id, values in rows.items():
        enough = values["votes"] >= MODEL_MIN_RATER_VOTES
        values["ds_skill"] = round(ds[rater_id], SKILL_DECIMALS) if enough and rater_id in ds else None
        values["nbt_skill"] = round(nbt[rater_id], SKILL_DECIMALS) if enough and rater_id in nbt else None


def _gold_histogram(rows: Iterable[dict[str, Any]]) -> list[int]:
    """Raters per gold-accuracy band of 10% ([0, 10%), ..., [90%, 100%]), raters with gold votes only."""
    bands = [0] * 10
    for values in rows:
        if values["gold_votes"]:
            bands[min(9, int(10 * values["gold_correct"] / values["gold_votes"]))] += 1
    return bands


def _row_values(row: RaterSignal | dict[str, Any]) -> tuple[Any, ...]:
    if isinstance(row, dict):
        return tuple(row[name] for name in SIGNAL_FIELDS)
    return tuple(getattr(row, name) for name in SIGNAL_FIELDS)


def _rater_rows_write(
    *,
    study_id: int | None,
    rows: dict[int, dict[str, Any]],
    stored: dict[int, RaterSignal],
    now: datetime,
    report: RefreshReport,
) -> set[int]:
    """Write the rows whose values differ from the stored ones; the raters written."""
    new: list[RaterSignal] = []
    updated: list[RaterSignal] = []
    for rater_id, values in rows.items():
        row = stored.get(rater_id)
        if row is not None and _row_values(row) == _row_values(values):
            continue
        if row is None:
            new.append(RaterSignal(rater_id=rater_id, study_id=study_id, refreshed_at=now, **values))
            continue
        for name, value in values.items():
            setattr(row, name, value)
        row.refreshed_at = now
        updated.append(row)
    RaterSignal.objects.bulk_create(new, batch_size=WRITE_BATCH)
    # An upsert on the primary key rather than bulk_update: bulk_update builds a CASE per field and row,
    # which costs seconds of Python and of planning at a few thousand rows; this is one plain INSERT
    # ... ON CONFLICT (id) DO UPDATE per batch, on PostgreSQL and SQLite alike.
    RaterSignal.objects.bulk_create(
        updated,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=[*SIGNAL_FIELDS, "refreshed_at"],
    )
    report.rows_written += len(new) + len(updated)
    return {row.rater_id for row in (*new, *updated)}


# --- Over all studies ---------------------------------------------------------------------------------


def _overall_refresh(*, raters: set[int], now: datetime, report: RefreshReport) -> None:
    """The study=None row of each rater whose per-study signals changed: counts summed over studies.

    Ratios are recomputed from the sums (gold Wilson interval, position p-value); agreement is the
    mean over all the rater's votes with company (the per-study means weighted by those votes); the
    longest run is the longest of any study. Time per vote is only comparable within a study, so the
    overall median and threshold stay empty; the model skills are per-study means weighted by votes."""
    if not raters:
        return
    with report.phase("queries"):
        per_study: dict[int, list[RaterSignal]] = {}
        stored: dict[int, RaterSignal] = {}
        for chunk in _chunks(sorted(raters), 5000):
            for row in RaterSignal.objects.filter(rater_id__in=chunk).order_by("study_id"):
                if row.study_id is None:
                    stored[row.rater_id] = row
                else:
                    per_study.setdefault(row.rater_id, []).append(row)
    with report.phase("numpy"):
        rows = {rater_id: _overall_values(studies) for rater_id, studies in per_study.items()}
    with report.phase("writing"):
        _rater_rows_write(study_id=None, rows=rows, stored=stored, now=now, report=report)


def _overall_values(studies: list[RaterSignal]) -> dict[str, Any]:
    total = {
        name: sum(getattr(row, name) for row in studies)
        for name in (
            "votes",
            "skips",
            "gold_votes",
            "gold_correct",
            "agreement_votes",
            "a_choices",
            "b_choices",
            "fast_votes",
        )
    }
    low, high = signals.wilson_interval(successes=total["gold_correct"], trials=total["gold_votes"])
    p_value = signals.binomial_p_values(successes=total["a_choices"], trials=total["a_choices"] + total["b_choices"])
    agreeing = sum(row.agreement * row.agreement_votes for row in studies if row.agreement is not None)
    longest = max(studies, key=lambda row: row.longest_run)
    return {
        **total,
        "gold_wilson_low": _float(float(low)),
        "gold_wilson_high": _float(float(high)),
        "agreement": agreeing / total["agreement_votes"] if total["agreement_votes"] else None,
        "position_p_value": _float(float(p_value)),
        "median_seconds": None,
        "fast_threshold_seconds": None,
        "longest_run": longest.longest_run,
        "longest_run_choice": longest.longest_run_choice,
        "ds_skill": _weighted_skill(studies, "ds_skill"),
        "nbt_skill": _weighted_skill(studies, "nbt_skill"),
    }


def _weighted_skill(studies: list[RaterSignal], name: str) -> float | None:
    weighed = [(getattr(row, name), row.votes) for row in studies if getattr(row, name) is not None]
    weight = sum(votes for _, votes in weighed)
    if not weight:
        return None
    return round(sum(skill * votes for skill, votes in weighed) / weight, SKILL_DECIMALS)


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- Flags and exclusions -----------------------------------------------------------------------------


def _study_summaries_refresh(*, only: int | None, now: datetime, report: RefreshReport) -> None:
    """Flags raised and votes excluded (by reason), for every study with a StudySignal.

    Cheap (two grouped queries) and run on every refresh, because staff and rules flag and exclude
    without any new vote, so the watermark does not see it."""
    with report.phase("queries"):
        summaries = StudySignal.objects.all() if only is None else StudySignal.objects.filter(study_id=only)
        summaries = list(summaries)
        ids = [summary.study_id for summary in summaries]
        flags = Counter(
            dict(
                ContentFlag.objects.filter(study_id__in=ids)
                .values_list("study_id")
                .annotate(n=Count("id"))
                .values_list("study_id", "n")
            )
        )
        excluded: dict[int, dict[str, int]] = {}
        for study_id, reason, n in (
            Vote.objects.filter(study_id__in=ids, quality_status=QualityStatus.EXCLUDED)
            .values_list("study_id", "quality_reason")
            .annotate(n=Count("id"))
            .values_list("study_id", "quality_reason", "n")
        ):
            excluded.setdefault(study_id, {})[reason or "unspecified"] = n
    with report.phase("writing"):
        changed = []
        for summary in summaries:
            values = (flags[summary.study_id], excluded.get(summary.study_id, {}))
            if (summary.flags, summary.excluded) != values:
                summary.flags, summary.excluded = values
                changed.append(summary)
        StudySignal.objects.bulk_update(changed, ["flags", "excluded"], batch_size=WRITE_BATCH)


# --- Locking ------------------------------------------------------------------------------------------


@contextmanager
def _refresh_lock() -> Iterator[None]:
    """One refresh at a time: two would race to create the same rows. A PostgreSQL advisory lock held
    by the session (a second refresh waits for the first, then finds little to do); SQLite
    serialises writers on its own."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
