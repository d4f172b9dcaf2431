"""Refresh the stored quality signals (RaterSignal, StudySignal) from the votes.

`signals_refresh()` is incremental by default: it refreshes only the studies that got votes (or
skips) since their watermark, or whose vote count shows one committed below it. How a study is
refreshed depends on its size:

- *whole* (`_whole_refresh`): one query loads all its votes as integer arrays (`_vote_arrays`) and
  every signal is computed from them. Small studies (and every study on a full refresh) go this way;
  so does any study whose stored state is missing or missed a vote.
- *folded* (`_folded_refresh`, large studies): the new votes are folded into running state stored
  with the signals (counts, agreement sums and alpha parts per item pair replaced for the pairs the
  new votes touch, the trailing run of answers); the study-wide speed threshold and per-rater median
  times come from every vote's time read from an index. It reads the new votes, the other votes of
  the item pairs they touch and that index, never the whole vote table.

Both give the same rows (a test checks it; agreement and alpha are rounded to 6 decimals because sums
folded in another order differ in the last bits). Only the rows whose values changed are written,
and `RefreshReport.changed` names those raters: the rules engine looks at them only.

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

# Skips carry no id order, only a finish time: a skip finished this long before the last refresh may
# still have been committing then, so skips that recent are looked at again (votes need no such
# margin: the vote count catches one committed below the watermark, see `_studies_due`).
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
# Running state stored beside the signals (see RaterSignal): written when it moves, never "a change".
STATE_FIELDS = ("agreement_sum", "trailing_run", "trailing_choice")
AGREEMENT_DECIMALS = 6
CHOICE_NAMES = {code: name for name, code in signals.CHOICE_CODES.items()}
Rows = dict[int, dict[str, Any]]
Stored = dict[int, dict[str, Any]]  # rater id -> the stored row's values (with "id")


@dataclass
class RefreshReport:
    """What a refresh did. `changed`: study id -> rater profile ids whose signals on it changed."""

    changed: dict[int, set[int]] = field(default_factory=dict)
    full: bool = False
    studies: int = 0
    votes: int = 0
    rows_written: int = 0
    models_run: int = 0
    whole: int = 0  # studies recomputed from all their votes
    folded: int = 0  # studies whose new votes were folded into the stored state
    recounted: int = 0  # of the whole ones, those whose stored state missed a late vote
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
    marks: dict[int, tuple[int, datetime | None]] = {}
    due: set[int] = set()
    for study_id, watermark, refreshed_at, included, votes_count in StudySignal.objects.filter(
        study__in=studies.values("pk")
    ).values_list("study_id", "watermark_vote_id", "refreshed_at", "votes", "study__votes_count"):
        marks[study_id] = (watermark, refreshed_at)
        if included != votes_count:  # a vote committed below the watermark, after it was set
            due.add(study_id)
    due |= set(studies.filter(votes_count__gt=0).exclude(pk__in=list(marks)).values_list("pk", flat=True))
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
    """Votes as integer arrays, in id (submission) order."""

    id: np.ndarray
    rater: np.ndarray
    item: np.ndarray
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

    @property
    def newest(self) -> int:
        return int(self.id.max()) if self.size else 0

    def where(self, mask: np.ndarray) -> StudyArrays:
        return StudyArrays(
            **{
                name: getattr(self, name)[mask]
                for name in (
                    "id",
                    "rater",
                    "item",
                    "unit",
                    "choice",
                    "label",
                    "gold",
                    "seconds",
                    "system_a",
                    "system_b",
                )
            },
            criteria={name: labels[mask] for name, labels in self.criteria.items()},
        )


def _study_refresh(*, study_id: int, full: bool, now: datetime, report: RefreshReport) -> None:
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # Every read below from one snapshot: the new votes, the units they touch, the times and
            # the study's vote count agree with each other (the refresh lock keeps writers out of
            # the signal rows, so this never fails to serialise).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with report.phase("queries"):
            study = Study.objects.get(pk=study_id)
            summary, _ = StudySignal.objects.select_for_update().get_or_create(study_id=study_id)
            skips = dict(
                Task.objects.filter(study_id=study_id, status=TaskStatus.SKIPPED)
                .values_list("rater_id")
                .annotate(n=Count("id"))
                .values_list("rater_id", "n")
            )
            stored = _stored_rows(RaterSignal.objects.filter(study_id=study_id))
        folded = None if full else _folded_refresh(study, summary=summary, stored=stored, skips=skips, report=report)
        if folded is None:
            rows, speed, parts, newest, count = _whole_refresh(
                study, skips=skips, full=full, stored=stored, report=report
            )
        else:
            rows, speed, parts, newest, count = folded
        with report.phase("writing"):
            changed = _rater_rows_write(study_id=study_id, rows=rows, stored=stored, now=now, report=report)
        if changed:
            report.changed[study_id] = changed
        with report.phase("numpy"):
            summary.votes = count
            summary.alpha_parts = {name: [float(x) for x in values] for name, values in parts.items()}
            summary.alpha = _rounded(signals.alpha_from_parts(parts[""]))
            summary.alpha_by_criterion = {
                name: _rounded(signals.alpha_from_parts(parts[name])) for name in study.criterion_names
            }
            summary.gold_accuracy_histogram = _gold_histogram(rows.values())
            summary.speed_typical_seconds = speed.typical
            summary.speed_log_sd = speed.log_sd
        with report.phase("writing"):
            summary.watermark_vote_id = newest
            summary.refreshed_at = now
            summary.save()


Parts = dict[str, np.ndarray]  # "" (the overall choice) or a criterion -> signals.alpha_parts
Refreshed = tuple[Rows, signals.Speed, Parts, int, int]  # rows, speed, alpha parts, newest vote, votes


def _whole_refresh(
    study: Study, *, skips: dict[int, int], full: bool, stored: Stored, report: RefreshReport
) -> Refreshed:
    """Every signal from all the study's votes at once (and the models, unless the study is large)."""
    with report.phase("queries"):
        arrays = _vote_arrays(Vote.objects.filter(study_id=study.pk), study)
    report.votes += arrays.size
    report.whole += 1
    with report.phase("numpy"):
        rows, speed = _rater_rows(arrays, skips=skips, sd=_speed_sd(study))
        parts = {"": signals.alpha_parts(unit=arrays.unit, label=arrays.label)}
        parts.update(
            {name: signals.alpha_parts(unit=arrays.unit, label=labels) for name, labels in arrays.criteria.items()}
        )
    if full or arrays.size <= MODELS_INCREMENTAL_MAX_VOTES:
        _models_apply(arrays, rows, report=report)
        report.models_run += 1
    else:
        _models_keep(rows, stored)
    return rows, speed, parts, max(arrays.newest, 0), arrays.size


def _folded_refresh(
    study: Study,
    *,
    summary: StudySignal,
    stored: Stored,
    skips: dict[int, int],
    report: RefreshReport,
) -> Refreshed | None:
    """Fold the votes since the watermark into the stored signals, reading only those votes, the other
    votes of the item pairs they touch, and every vote's time from an index.

    Only for large studies (small ones are recomputed whole, which also refreshes the models), and
    only when the stored state is complete: None when the study must be recomputed whole because
    a vote committed below the watermark after it was set (the counts disagree) or no state exists.
    Gives the rows a whole refresh gives, up to float rounding in the agreement sums."""
    if summary.alpha_parts is None or summary.votes <= MODELS_INCREMENTAL_MAX_VOTES:
        return None
    with report.phase("queries"):
        new = _vote_arrays(Vote.objects.filter(study_id=study.pk, id__gt=summary.watermark_vote_id), study)
        if summary.votes + new.size != study.votes_count:
            report.recounted += 1
            return None
        touched = _vote_arrays(
            Vote.objects.filter(study_id=study.pk, item_id__in=sorted(set(new.item.tolist()))), study
        )
        # Any order (the medians sort): read from the index (study, rater, duration_ms) alone.
        times = _int_table(
            Vote.objects.filter(study_id=study.pk).order_by().values_list("rater_id", "duration_ms"), width=2
        )
    report.votes += new.size + touched.size
    report.folded += 1
    with report.phase("numpy"):
        rows = {rater_id: _stored_values(row) for rater_id, row in stored.items()}
        for rater_id in set(new.rater.tolist()) | set(skips):
            rows.setdefault(rater_id, _empty_row(skips=0, threshold=None))
        for rater_id, values in rows.items():
            values["skips"] = skips.get(rater_id, 0)
        _counts_fold(rows, new)
        parts = _agreement_fold(rows, touched, watermark=summary.watermark_vote_id, stored_parts=summary.alpha_parts)
        _runs_fold(rows, new)
        speed = _speed_apply(rows, rater=times[:, 0], seconds=times[:, 1] / 1000.0, sd=_speed_sd(study))
        _derived_apply(rows)
    return rows, speed, parts, max(summary.watermark_vote_id, new.newest), summary.votes + new.size


def _stored_values(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in (*SIGNAL_FIELDS, *STATE_FIELDS)}


def _stored_rows(queryset: Any) -> Stored:
    return {row["rater_id"]: row for row in _row_dicts(queryset)}


def _row_dicts(queryset: Any) -> Iterator[dict[str, Any]]:
    """Stored rows as dicts: thousands of model instances cost most of a refresh's reading time."""
    return queryset.values("id", "rater_id", "study_id", *SIGNAL_FIELDS, *STATE_FIELDS).iterator(chunk_size=5000)


def _counts_fold(rows: Rows, new: StudyArrays) -> None:
    raters, index = np.unique(new.rater, return_inverse=True)
    index = index.ravel()

    def count(mask: np.ndarray) -> list[int]:
        return np.bincount(index, weights=mask, minlength=raters.size).astype(np.int64).tolist()

    added = {
        "votes": np.bincount(index, minlength=raters.size).tolist(),
        "gold_votes": count(new.gold >= 0),
        "gold_correct": count(new.gold == 1),
        "a_choices": count(new.choice == signals.CHOICE_A),
        "b_choices": count(new.choice == signals.CHOICE_B),
    }
    for i, rater_id in enumerate(raters.tolist()):
        values = rows[rater_id]
        for name, counts in added.items():
            values[name] += counts[i]


def _agreement_fold(rows: Rows, touched: StudyArrays, *, watermark: int, stored_parts: dict[str, list[float]]) -> Parts:
    """Replace the agreement and alpha contributions of the item pairs that got new votes: their
    votes before the watermark are taken out, all their votes put in."""
    units = np.unique(touched.unit[touched.id > watermark])
    touched = touched.where(np.isin(touched.unit, units))
    before = touched.id <= watermark
    for sign, subset in ((-1, touched.where(before)), (1, touched)):
        others, same = signals.vote_agreement(unit=subset.unit, label=subset.label)
        company = others > 0
        share = np.divide(same, others, out=np.zeros(others.size), where=company)
        raters, index = np.unique(subset.rater, return_inverse=True)
        counted = np.bincount(index.ravel(), weights=company, minlength=raters.size).astype(np.int64).tolist()
        total = np.bincount(index.ravel(), weights=share, minlength=raters.size).tolist()
        for i, rater_id in enumerate(raters.tolist()):
            rows[rater_id]["agreement_votes"] += sign * counted[i]
            rows[rater_id]["agreement_sum"] += sign * total[i]
    parts: Parts = {}
    for name, labels in (("", touched.label), *touched.criteria.items()):
        old = np.asarray(stored_parts.get(name, np.zeros(1 + len(signals.LABEL_NAMES))), dtype=np.float64)
        parts[name] = (
            old
            - signals.alpha_parts(unit=touched.unit[before], label=labels[before])
            + signals.alpha_parts(unit=touched.unit, label=labels)
        )
    return parts


def _runs_fold(rows: Rows, new: StudyArrays) -> None:
    by_rater: dict[int, list[int]] = {}
    for rater_id, choice in zip(new.rater.tolist(), new.choice.tolist(), strict=True):  # id order
        by_rater.setdefault(rater_id, []).append(choice)
    for rater_id, choices in by_rater.items():
        values = rows[rater_id]
        longest, longest_value, trailing, trailing_value = signals.runs_extend(
            longest=values["longest_run"],
            longest_value=signals.CHOICE_CODES.get(values["longest_run_choice"], -1),
            trailing=values["trailing_run"],
            trailing_value=values["trailing_choice"],
            values=choices,
        )
        values.update(
            longest_run=longest,
            longest_run_choice=CHOICE_NAMES.get(longest_value, ""),
            trailing_run=trailing,
            trailing_choice=trailing_value,
        )


def _speed_apply(rows: Rows, *, rater: np.ndarray, seconds: np.ndarray, sd: float) -> signals.Speed:
    """The study's speed threshold, and each rater's median time and fast votes against it."""
    speed = signals.speed_threshold(seconds=seconds, sd=sd, min_votes=SPEED_MIN_VOTES)
    raters, medians = signals.group_medians(group=rater, values=seconds)
    fast = _fast_counts(rater=rater, seconds=seconds, threshold=speed.threshold)
    median_of = dict(zip(raters.tolist(), medians.tolist(), strict=True))
    for rater_id, values in rows.items():
        values["median_seconds"] = median_of.get(rater_id)
        values["fast_votes"] = fast.get(rater_id, 0)
        values["fast_threshold_seconds"] = speed.threshold
    return speed


def _fast_counts(*, rater: np.ndarray, seconds: np.ndarray, threshold: float | None) -> dict[int, int]:
    if threshold is None or rater.size == 0:
        return {}
    raters, counts = np.unique(rater[seconds < threshold], return_counts=True)
    return dict(zip(raters.tolist(), counts.tolist(), strict=True))


def _derived_apply(rows: Rows) -> None:
    """The values derived from the counts, for every row at once (scipy per row costs seconds at
    thousands of raters): the gold interval, the position test, the agreement mean."""
    if not rows:
        return
    values = list(rows.values())

    def column(name: str) -> np.ndarray:
        return np.array([row[name] for row in values], dtype=np.float64)

    low, high = signals.wilson_interval(successes=column("gold_correct"), trials=column("gold_votes"))
    a_choices = column("a_choices").astype(np.int64)
    p_values = signals.binomial_p_values(successes=a_choices, trials=a_choices + column("b_choices").astype(np.int64))
    for row, row_low, row_high, p_value in zip(values, low.tolist(), high.tolist(), p_values.tolist(), strict=True):
        row["gold_wilson_low"] = _float(row_low)
        row["gold_wilson_high"] = _float(row_high)
        row["position_p_value"] = _float(p_value)
        row["agreement"] = _rounded(row["agreement_sum"] / row["agreement_votes"]) if row["agreement_votes"] else None


def _rounded(value: float | None) -> float | None:
    """Agreement and alpha to 6 decimals: sums folded in a different order differ in the last bits,
    which must not count as a change."""
    return None if value is None else round(value, AGREEMENT_DECIMALS)


def _models_keep(rows: Rows, stored: Stored) -> None:
    """Keep the last full refresh's model estimates (the models need the whole study)."""
    for rater_id, values in rows.items():
        old = stored.get(rater_id)
        values["ds_skill"] = old["ds_skill"] if old else None
        values["nbt_skill"] = old["nbt_skill"] if old else None


def _vote_arrays(votes: Any, study: Study) -> StudyArrays:
    """One query: the votes as integers (codes computed by the database), in id order.

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
        votes
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
        .order_by("id")
        .values_list(
            "rater_id",
            "item_id",
            "choice_code",
            "swapped_code",
            "gold_code",
            "duration_ms",
            "system_a_code",
            "system_b_code",
            "id",
            *(f"{alias}_code" for alias in criteria),
        )
    )
    width = 9 + len(criteria)
    table = _int_table(queryset, width=width)
    swapped = table[:, 3]
    return StudyArrays(
        id=table[:, 8],
        rater=table[:, 0],
        item=table[:, 1],
        unit=_pair_units(item=table[:, 1], system_a=table[:, 6], system_b=table[:, 7]),
        choice=table[:, 2],
        label=signals.labels_from_choices(choices=table[:, 2], swapped=swapped),
        gold=table[:, 4],
        seconds=table[:, 5] / 1000.0,
        system_a=table[:, 6],
        system_b=table[:, 7],
        criteria={
            name: signals.labels_from_choices(choices=table[:, 9 + index], swapped=swapped)
            for index, name in enumerate(criteria.values())
        },
    )


def _int_table(queryset: Any, *, width: int) -> np.ndarray:
    """Run a values_list of `width` integer columns (ordered) and return it as an (n, width) array.

    On PostgreSQL the rows come back as one bytea of big-endian int8s, built by the database in the
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
    packed = " || ".join(f"int8send(sub.{position[key]}::int8)" for key in keys)
    ordering = ", ".join(f"sub.{position[name.lstrip('-')]}{' DESC' if name.startswith('-') else ''}" for name in order)
    sql, params = inner.query.sql_with_params()
    order_clause = f" ORDER BY {ordering}" if ordering else ""  # unordered: no sort, the scan's own order
    wrapped = f"SELECT string_agg({packed}, ''::bytea{order_clause}) FROM ({sql}) AS sub({', '.join(columns)})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(wrapped, params)
        data = cursor.fetchone()[0]
    if data is None:
        return np.zeros((0, width), dtype=np.int64)
    return np.frombuffer(bytes(data), dtype=">i8").astype(np.int64).reshape(-1, width)


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


def _rater_rows(arrays: StudyArrays, *, skips: dict[int, int], sd: float) -> tuple[Rows, signals.Speed]:
    """Every rater's signal values on the study, from the arrays (no database)."""
    raters, index = np.unique(arrays.rater, return_inverse=True)
    index = index.ravel()

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=mask, minlength=raters.size).astype(np.int64)

    votes = np.bincount(index, minlength=raters.size)
    gold_votes, gold_correct = count(arrays.gold >= 0), count(arrays.gold == 1)
    others, same = signals.vote_agreement(unit=arrays.unit, label=arrays.label)
    company = others > 0
    agreement_votes = count(company)
    agreement_sum = np.bincount(
        index, weights=np.divide(same, others, out=np.zeros(others.size), where=company), minlength=raters.size
    )
    a_choices, b_choices = count(arrays.choice == signals.CHOICE_A), count(arrays.choice == signals.CHOICE_B)
    _, run_lengths, run_choices = signals.longest_runs(group=arrays.rater, values=arrays.choice)
    _, trailing_lengths, trailing_choices = signals.trailing_runs(group=arrays.rater, values=arrays.choice)
    rows: Rows = {}
    for i, rater_id in enumerate(raters.tolist()):
        rows[rater_id] = {
            **_empty_row(skips=skips.get(rater_id, 0), threshold=None),
            "votes": int(votes[i]),
            "gold_votes": int(gold_votes[i]),
            "gold_correct": int(gold_correct[i]),
            "agreement_votes": int(agreement_votes[i]),
            "agreement_sum": float(agreement_sum[i]),
            "a_choices": int(a_choices[i]),
            "b_choices": int(b_choices[i]),
            "longest_run": int(run_lengths[i]),
            "longest_run_choice": CHOICE_NAMES.get(int(run_choices[i]), ""),
            "trailing_run": int(trailing_lengths[i]),
            "trailing_choice": int(trailing_choices[i]),
        }
    for rater_id, skipped in skips.items():  # raters who only skipped
        rows.setdefault(rater_id, _empty_row(skips=skipped, threshold=None))
    speed = _speed_apply(rows, rater=arrays.rater, seconds=arrays.seconds, sd=sd)
    _derived_apply(rows)
    return rows, speed


def _empty_row(*, skips: int, threshold: float | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SIGNAL_FIELDS)
    row.update(
        votes=0, skips=skips, gold_votes=0, gold_correct=0, agreement_votes=0, a_choices=0, b_choices=0, fast_votes=0
    )
    row.update(longest_run=0, longest_run_choice="", fast_threshold_seconds=threshold)
    row.update(agreement_sum=0.0, trailing_run=0, trailing_choice=-1)
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


def _row_values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in SIGNAL_FIELDS)


def _rater_rows_write(
    *,
    study_id: int | None,
    rows: Rows,
    stored: Stored,
    now: datetime,
    report: RefreshReport,
) -> set[int]:
    """Write the rows whose values differ from the stored ones; the raters whose signals changed
    (a row whose running state alone moved is written but is not a change)."""
    new: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    changed: set[int] = set()
    for rater_id, values in rows.items():
        row = stored.get(rater_id)
        signals_differ = row is None or _row_values(row) != _row_values(values)
        if not signals_differ and all(row[name] == values[name] for name in STATE_FIELDS):
            continue
        if signals_differ:
            changed.add(rater_id)
        written = {**values, "rater_id": rater_id, "study_id": study_id, "refreshed_at": now}
        if row is None:
            new.append(written)
        else:
            updated.append({**written, "id": row["id"]})
    _rows_insert(new)
    _rows_update(updated)
    report.rows_written += len(new) + len(updated)
    return changed


WRITTEN_FIELDS = ("rater_id", "study_id", *SIGNAL_FIELDS, *STATE_FIELDS, "refreshed_at")


def _rows_insert(rows: list[dict[str, Any]]) -> None:
    RaterSignal.objects.bulk_create(
        [RaterSignal(**{name: row[name] for name in WRITTEN_FIELDS}) for row in rows], batch_size=WRITE_BATCH
    )


def _rows_update(rows: list[dict[str, Any]]) -> None:
    """Update rows by id. On PostgreSQL one UPDATE ... FROM unnest(column arrays) per batch: the driver
    sends each column as one array, where Django's bulk paths prepare every value of every row in
    Python (seconds at a few thousand rows of 25 fields). Elsewhere an upsert on the primary key."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        RaterSignal.objects.bulk_create(
            [RaterSignal(id=row["id"], **{name: row[name] for name in WRITTEN_FIELDS}) for row in rows],
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=[name for name in WRITTEN_FIELDS if name not in ("rater_id", "study_id")],
        )
        return
    fields = [
        RaterSignal._meta.get_field(name) for name in ("id", *WRITTEN_FIELDS) if name not in ("rater_id", "study_id")
    ]
    columns = [field.column for field in fields]
    table = RaterSignal._meta.db_table
    assignments = ", ".join(f"{column} = v.{column}" for column in columns[1:])
    arrays = ", ".join(f"%s::{_array_type(field)}" for field in fields)
    sql = f"UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE t.id = v.id"  # noqa: S608
    with connection.cursor() as cursor:
        for start in range(0, len(rows), WRITE_BATCH * 10):
            batch = rows[start : start + WRITE_BATCH * 10]
            cursor.execute(sql, [[row[field.attname] for row in batch] for field in fields])


def _array_type(field: Any) -> str:
    kind = field.db_type(connection)
    return f"{kind.split(' CHECK')[0]}[]"


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
        per_study: dict[int, list[dict[str, Any]]] = {}
        stored: Stored = {}
        for chunk in _chunks(sorted(raters), 5000):
            for row in _row_dicts(RaterSignal.objects.filter(rater_id__in=chunk).order_by("study_id")):
                if row["study_id"] is None:
                    stored[row["rater_id"]] = row
                else:
                    per_study.setdefault(row["rater_id"], []).append(row)
    with report.phase("numpy"):
        rows = {rater_id: _overall_values(studies) for rater_id, studies in per_study.items()}
        _derived_apply(rows)
    with report.phase("writing"):
        _rater_rows_write(study_id=None, rows=rows, stored=stored, now=now, report=report)


def _overall_values(studies: list[dict[str, Any]]) -> dict[str, Any]:
    total = {
        name: sum(row[name] for row in studies)
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
    agreeing = sum(row["agreement_sum"] for row in studies)
    longest = max(studies, key=lambda row: row["longest_run"])
    return {
        **total,
        "agreement_sum": agreeing,
        "trailing_run": 0,  # runs are per study
        "trailing_choice": -1,
        "median_seconds": None,
        "fast_threshold_seconds": None,
        "longest_run": longest["longest_run"],
        "longest_run_choice": longest["longest_run_choice"],
        "ds_skill": _weighted_skill(studies, "ds_skill"),
        "nbt_skill": _weighted_skill(studies, "nbt_skill"),
    }


def _weighted_skill(studies: list[dict[str, Any]], name: str) -> float | None:
    weighed = [(row[name], row["votes"]) for row in studies if row[name] is not None]
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
