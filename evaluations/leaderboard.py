"""The study leaderboard: votes aggregated in SQL, rated by `evaluations.ratings`, cached by content.

- One query reads everything a leaderboard depends on: the study's votes grouped by (system A,
  system B, outcome, quality status, gold) and, as rows of their own in the same UNION ALL, the
  registered systems. Its result is hashed with the options into the cache key, so a view after
  no new vote costs that one query and a cache read; any new vote, exclusion or registration
  changes the key. On a miss the Bradley-Terry bootstrap runs again over the aggregated counts (its
  cost grows with the number of system pairs, not of votes: fine for a study's few systems).
- Every registered system is listed, rated or not: a leaderboard never hides a system.
- Gold votes (crafted pairs with a known answer, no system behind them) never count; votes the
  quality checks excluded are left out unless `quality="all"`, and both are counted for the page.
- Ratings are keyed by system name: clients see their own systems' names (raters never reach a
  leaderboard), and the names are what `compute_ratings` prints for an exported battle file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import BigIntegerField, Count, F, QuerySet, Value
from django.db.models.expressions import Combinable
from django.db.models.fields.json import KeyTextTransform
from django.http import Http404

from crowdplatform.accounts.principals import Actor
from crowdplatform.core.errors import ApplicationError
from evaluations.access import studies_visible_to
from evaluations.models import Choice, QualityStatus, Study, System, Vote
from evaluations.ratings import DEFAULT_BOOTSTRAP, PairCounts, RatingResult, elo_online, ratings_compute

QUALITY_INCLUDED = "included"
QUALITY_ALL = "all"
QUALITY_OPTIONS = (QUALITY_INCLUDED, QUALITY_ALL)
MAX_BOOTSTRAP = 10_000
# The key is the content, so an entry never goes stale; the timeout only bounds the cache's size.
CACHE_SECONDS = 24 * 3600
CACHE_FORMAT = 1  # bump when Leaderboard changes shape, so old pickles are never read back

# The arena's convention: a tie, and "both are bad", count as half a win for each side.
OUTCOME_SCORE: dict[str, float] = {Choice.A: 1.0, Choice.B: 0.0, Choice.TIE: 0.5, Choice.BOTH_BAD: 0.5}

VOTE_ROW = "vote"
SYSTEM_ROW = "system"


@dataclass(frozen=True)
class LeaderboardRow:
    system: str
    rating: float | None  # None: no counted votes (or the fit failed, see Leaderboard.error)
    ci_low: float | None
    ci_high: float | None
    rank: int | None
    votes: int  # counted votes the system took part in
    provisional: bool
    elo: float | None

    def as_dict(self) -> dict[str, Any]:
        """The API's system entry. The first six keys are `compute_ratings`'s, in its order."""
        return {
            "system": self.system,
            "rating": self.rating,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "rank": self.rank,
            "votes": self.votes,
            "provisional": self.provisional,
            "elo": self.elo,
        }


@dataclass(frozen=True)
class Leaderboard:
    study_id: int
    criterion: str | None
    quality: str
    bootstrap: int
    seed: int
    anchor: tuple[str, float] | None
    rows: tuple[LeaderboardRow, ...]  # rated systems best first, then the others
    matrix_systems: tuple[str, ...]  # the rated systems, best first: the order of the matrices
    win_rate: tuple[tuple[float | None, ...], ...]  # row's share of wins over column; None: no battles
    battles: tuple[tuple[int, ...], ...]
    votes_counted: int
    votes_excluded: int  # left out because quality checks excluded them (0 with quality="all")
    gold_votes: int  # left out because they are gold (never counted)
    criteria: tuple[str, ...]  # the study's criteria, for switching views
    error: str | None = None  # why no ratings could be computed (the rows still list every system)

    @property
    def rated(self) -> tuple[LeaderboardRow, ...]:
        return tuple(row for row in self.rows if row.rating is not None)


@dataclass(frozen=True)
class _Tally:
    """One row of the aggregation query."""

    kind: str
    a: int | None  # system A's id; for a SYSTEM_ROW the system's id
    b: int | None
    outcome: str | None  # the choice or the criterion's answer; for a SYSTEM_ROW the system's name
    quality: str
    gold: bool
    votes: int


# --- Who may see a leaderboard ------------------------------------------------------------------


def public_study(study_id: object) -> Study:
    """A study whose owners made its leaderboard public; 404 for any other (private or missing)."""
    study = Study.objects.select_related("organization").filter(pk=study_id, is_public=True).first()
    if study is None:
        raise Http404("No such leaderboard.")
    return study


def leaderboard_study_for(actor: Actor, study_id: object) -> Study:
    """The study if the actor may see it (`study_for`'s rule), or if it is public; 404 otherwise."""
    study = studies_visible_to(actor).select_related("organization").filter(pk=study_id).first()
    return study if study is not None else public_study(study_id)


# --- The leaderboard ----------------------------------------------------------------------------


def study_leaderboard(
    *,
    study: Study,
    criterion: str | None = None,
    quality: str = QUALITY_INCLUDED,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
) -> Leaderboard:
    """The study's leaderboard: overall, or on one criterion's answers.

    Raises ApplicationError (400) for options that cannot apply to this study: an unknown
    criterion or anchor system, an anchor without counted votes, a bootstrap out of range.
    """
    _check_options(study, criterion, quality, bootstrap)
    tallies = _tallies(study, criterion)
    if anchor is not None:
        _check_anchor(anchor, tallies, quality)
    key = _cache_key(
        study, tallies, criterion=criterion, quality=quality, bootstrap=bootstrap, seed=seed, anchor=anchor
    )
    board = cache.get(key)
    if board is None:
        board = _compute(
            study, tallies, criterion=criterion, quality=quality, bootstrap=bootstrap, seed=seed, anchor=anchor
        )
        cache.set(key, board, CACHE_SECONDS)
    return board


def _check_options(study: Study, criterion: str | None, quality: str, bootstrap: int) -> None:
    if criterion is not None and criterion not in study.criterion_names:
        known = ", ".join(study.criterion_names) or "none"
        raise ApplicationError(
            f"The study has no criterion {criterion!r} (its criteria: {known}).",
            code="unknown_criterion",
            fields={"criterion": [f"One of: {known}."]},
        )
    if quality not in QUALITY_OPTIONS:
        raise ApplicationError(
            f"quality is {' or '.join(QUALITY_OPTIONS)}, not {quality!r}.",
            code="invalid_quality",
            fields={"quality": [f"One of: {', '.join(QUALITY_OPTIONS)}."]},
        )
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise ApplicationError(
            f"bootstrap is a number of rounds from 0 to {MAX_BOOTSTRAP}.",
            code="invalid_bootstrap",
            fields={"bootstrap": [f"From 0 to {MAX_BOOTSTRAP}."]},
        )


def _check_anchor(anchor: tuple[str, float], tallies: Sequence[_Tally], quality: str) -> None:
    name = anchor[0]
    ids = [t.a for t in tallies if t.kind == SYSTEM_ROW and t.outcome == name]
    if not ids:
        raise ApplicationError(
            f"The study has no system named {name!r} to anchor the ratings on.",
            code="unknown_anchor",
            fields={"anchor": ["Name a registered system: SYSTEM=RATING."]},
        )
    if not any(_counts(t, quality) is not None and ids[0] in (t.a, t.b) for t in tallies if t.kind == VOTE_ROW):
        raise ApplicationError(
            f"{name!r} has no counted votes yet, so it has no rating to anchor on.",
            code="anchor_without_votes",
            fields={"anchor": ["Anchor on a system with votes."]},
        )


def _outcome_expression(criterion: str | None) -> Combinable:
    return F("choice") if criterion is None else KeyTextTransform(criterion, "criteria")


def _tallies(study: Study, criterion: str | None) -> list[_Tally]:
    """The one query: votes grouped by everything the leaderboard depends on, and the systems.

    Every column is an annotation, made in the same order in both halves, so the UNION lines
    them up by position on every database.
    """
    votes = (
        Vote.objects.filter(study_id=study.pk)
        .order_by()
        .annotate(
            kind=Value(VOTE_ROW),
            a=F("system_a_id"),
            b=F("system_b_id"),
            outcome=_outcome_expression(criterion),
            quality=F("quality_status"),
            gold=F("is_gold"),
        )
        .values_list("kind", "a", "b", "outcome", "quality", "gold")
        .annotate(n=Count("id"))
    )
    systems = (
        System.objects.filter(study_id=study.pk)
        .order_by()
        .annotate(
            kind=Value(SYSTEM_ROW),
            a=F("id"),
            b=Value(None, output_field=BigIntegerField()),
            outcome=F("name"),
            quality=Value(""),
            gold=Value(False),
            n=Value(0),
        )
        .values_list("kind", "a", "b", "outcome", "quality", "gold", "n")
    )
    rows = votes.union(systems, all=True)
    return sorted((_Tally(*row) for row in rows), key=_tally_order)


def _tally_order(tally: _Tally) -> tuple[Any, ...]:
    return (tally.kind, tally.a or 0, tally.b or 0, tally.outcome or "", tally.quality, tally.gold)


def _counts(tally: _Tally, quality: str) -> float | None:
    """The vote's score for system A if this tally counts under `quality`, else None."""
    if tally.gold or tally.a is None or tally.b is None:
        return None
    if quality == QUALITY_INCLUDED and tally.quality != QualityStatus.INCLUDED:
        return None
    return OUTCOME_SCORE.get(tally.outcome or "")


def _cache_key(study: Study, tallies: Sequence[_Tally], **options: Any) -> str:
    content = {
        "format": CACHE_FORMAT,
        "study": study.pk,
        "criteria": study.criterion_names,
        "provisional": settings.LEADERBOARD_PROVISIONAL_VOTES,
        "options": options,
        "tallies": [[t.kind, t.a, t.b, t.outcome, t.quality, t.gold, t.votes] for t in tallies],
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return f"leaderboard:{study.pk}:{digest}"


# --- Computing it (on a cache miss) -------------------------------------------------------------


@dataclass
class _Aggregate:
    systems: tuple[str, ...]  # registered, in registration order
    index: dict[int, int]  # system id -> position in `systems`
    cells: dict[tuple[int, int], list[float]]  # (low, high) positions -> [low wins, high wins, ties]
    counted: int = 0
    excluded: int = 0
    gold: int = 0


def _aggregate(tallies: Sequence[_Tally], quality: str) -> _Aggregate:
    registered = sorted((t.a, t.outcome) for t in tallies if t.kind == SYSTEM_ROW)
    systems = tuple(str(name) for _, name in registered)
    total = _Aggregate(systems=systems, index={pk: i for i, (pk, _) in enumerate(registered)}, cells={})
    for tally in tallies:
        if tally.kind != VOTE_ROW or tally.outcome not in OUTCOME_SCORE:
            continue  # a system row, or a vote that did not answer this criterion
        if tally.gold or tally.a is None or tally.b is None:
            total.gold += tally.votes
            continue
        score = _counts(tally, quality)
        if score is None:
            total.excluded += tally.votes
            continue
        total.counted += tally.votes
        a, b = total.index[tally.a], total.index[tally.b]
        low, high, low_score = (a, b, score) if a < b else (b, a, 1.0 - score)
        cell = total.cells.setdefault((low, high), [0.0, 0.0, 0.0])
        cell[0 if low_score == 1.0 else 1 if low_score == 0.0 else 2] += tally.votes
    return total


def _pair_counts(total: _Aggregate) -> PairCounts:
    """One entry per pair of systems, low position first, pairs in (low, high) order."""
    pairs = sorted(total.cells)
    cells = np.array([total.cells[pair] for pair in pairs], dtype=np.float64).reshape(len(pairs), 3)
    return PairCounts(
        systems=total.systems,
        a=np.array([low for low, _ in pairs], dtype=np.int64),
        b=np.array([high for _, high in pairs], dtype=np.int64),
        wins_a=cells[:, 0].copy(),
        wins_b=cells[:, 1].copy(),
        ties=cells[:, 2].copy(),
    )


def _votes_per_system(total: _Aggregate) -> dict[str, int]:
    votes = dict.fromkeys(total.systems, 0)
    for (low, high), cell in total.cells.items():
        for position in (low, high):
            votes[total.systems[position]] += int(sum(cell))
    return votes


def _elo(study: Study, total: _Aggregate, criterion: str | None, quality: str) -> dict[str, float]:
    """Online Elo over the counted votes, oldest first: a secondary view (it depends on the order)."""
    votes: QuerySet[Vote] = Vote.objects.filter(
        study_id=study.pk, is_gold=False, system_a__isnull=False, system_b__isnull=False
    )
    if quality == QUALITY_INCLUDED:
        votes = votes.filter(quality_status=QualityStatus.INCLUDED)
    outcome = _outcome_expression(criterion)
    battles = [
        (total.index[a], total.index[b], OUTCOME_SCORE[answer])
        for a, b, answer in votes.annotate(outcome=outcome)
        .filter(outcome__isnull=False)
        .order_by("id")
        .values_list("system_a_id", "system_b_id", "outcome")
        .iterator(chunk_size=5000)
        if answer in OUTCOME_SCORE
    ]
    if not battles:
        return {}
    model_a, model_b, score = (np.array(column) for column in zip(*battles, strict=True))
    ratings = elo_online(systems=total.systems, model_a=model_a, model_b=model_b, outcome=score)
    played = set(model_a.tolist()) | set(model_b.tolist())
    return {name: value for position, (name, value) in enumerate(ratings.items()) if position in played}


def _compute(
    study: Study,
    tallies: Sequence[_Tally],
    *,
    criterion: str | None,
    quality: str,
    bootstrap: int,
    seed: int,
    anchor: tuple[str, float] | None,
) -> Leaderboard:
    total = _aggregate(tallies, quality)
    votes = _votes_per_system(total)
    elo = _elo(study, total, criterion, quality) if total.counted else {}
    threshold = settings.LEADERBOARD_PROVISIONAL_VOTES
    error = None
    try:
        result = ratings_compute(counts=_pair_counts(total), bootstrap=bootstrap, seed=seed, anchor=anchor)
    except ValueError as problem:  # e.g. systems in pieces no vote connects: no common scale
        error, result = str(problem), None
    rated = [] if result is None else result.ratings
    rows = [
        LeaderboardRow(r.system, r.rating, r.ci_low, r.ci_high, r.rank, r.votes, r.votes < threshold, elo.get(r.system))
        for r in rated
    ]
    named = {row.system for row in rows}
    others = sorted((name for name in total.systems if name not in named), key=lambda name: -votes[name])
    rows += [
        LeaderboardRow(name, None, None, None, None, votes[name], votes[name] < threshold, elo.get(name))
        for name in others
    ]
    matrix_systems, win_rate, battles = _matrices(result)
    return Leaderboard(
        study_id=study.pk,
        criterion=criterion,
        quality=quality,
        bootstrap=bootstrap,
        seed=seed,
        anchor=anchor,
        rows=tuple(rows),
        matrix_systems=matrix_systems,
        win_rate=win_rate,
        battles=battles,
        votes_counted=total.counted,
        votes_excluded=total.excluded,
        gold_votes=total.gold,
        criteria=tuple(study.criterion_names),
        error=error,
    )


def _matrices(
    result: RatingResult | None,
) -> tuple[tuple[str, ...], tuple[tuple[float | None, ...], ...], tuple[tuple[int, ...], ...]]:
    """The win-rate and battle matrices reordered best first, as plain Python values."""
    if result is None or not result.ratings:
        return (), (), ()
    order = [result.systems.index(rating.system) for rating in result.ratings]
    win_rate = tuple(
        tuple(None if np.isnan(result.win_rate[i, j]) else float(result.win_rate[i, j]) for j in order) for i in order
    )
    battles = tuple(tuple(int(result.battles[i, j]) for j in order) for i in order)
    return tuple(result.systems[i] for i in order), win_rate, battles
