"""Ratings from pairwise battles: Bradley-Terry with bootstrap intervals, on the arena's scale.

Pure numpy/scipy, no Django: the leaderboard (SQL aggregation), `compute_ratings` (any
arena-format battle file) and the benchmarks all call the same functions.

Conventions (as FastChat's `compute_bt` / `compute_bootstrap_bt`):
- a tie (`tie` or `tie (bothbad)`) counts as half a win for each side;
- ratings are on the arena scale: 400 / ln 10 rating points per logit, 1000 as the base,
  or shifted so an anchor system has a given rating;
- the bootstrap resamples the aggregated (pair, outcome) counts multinomially, so its cost
  grows with the number of pairs, not of battles;
- rank = 1 + the number of systems whose interval's lower bound is above this system's upper bound.

How it is fast (2.8M battles, 238 systems, 1,000 rounds in about 3 s on 2 cores):
- the fit is Newton's method on the whole rating vector; the Hessian of the BT log-likelihood is the
  Laplacian of the comparison graph weighted by n·p·(1-p), so a step is one dense n×n solve;
- every bootstrap round starts from the full-data fit (a resample moves ratings a little, so 3
  Newton steps usually reach 1e-4 standard errors), and the rounds of a chunk take their steps
  together: one batched scatter for the gradients and Hessians, one batched LAPACK solve;
- chunks of rounds are bounded in memory (`CHUNK_BYTES`) and run on a small thread pool: numpy's
  random sampling and LAPACK release the GIL, and BLAS is kept single-threaded meanwhile, since
  small 238×238 factorisations are faster one per core than split across cores.

Order invariance: `ratings_compute` first puts the counts in a canonical form (systems sorted by
name, each pair as (lower name, higher name) with duplicates and both orders summed, pairs sorted),
so the same battles give bit-identical ratings and intervals however they were aggregated (SQL on
the leaderboard page, a JSONL file in `compute_ratings`). Each bootstrap round draws from its own
random stream (`SeedSequence(seed).spawn`), so the numbers do not depend on chunking or threads.

The ridge: a tiny L2 term, λ = `RIDGE` × the fewest battles any system took part in, keeps a system
that won or lost every battle finite (roughly 10 logits, ~2,000 points, from its opponents, with a
very wide interval) instead of drifting to infinity. It pulls each rating towards the mean by about
λ·|rating| / (the system's Fisher information) ≤ 1e-6 × |rating| / p(1-p): thousandths of a point
at most (0.0005 point measured on benchmarks/ratings_bootstrap.py's arena-scale data, where a system
with 3 battles sets λ), so the fit is the maximum likelihood estimate for all practical purposes.
The bootstrap rounds use the full data's λ (a resample can leave a system without battles: its
rating is then 0, the mean).

Disconnected comparisons: if the systems split into groups that never met (directly or through
other systems), ratings across groups would mean nothing, so `ratings_compute` raises
`DisconnectedComparisons` (a ValueError) naming the groups; the leaderboard shows its message.
A bootstrap round that happens to cut a weak bridge leaves the groups' offset to the ridge (no
information: it pulls both towards the mean), which honestly widens those intervals.

Cost: O(battles) to aggregate, then O(rounds × (pairs + systems³)); meant for up to a few hundred
systems (the dense n×n solve per round and Newton step dominates beyond that).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import solve_triangular
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
ALPHA = np.log(BASE) / SCALE  # logits per rating point
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
DEFAULT_BOOTSTRAP = 1000
INTERVAL = (0.025, 0.975)  # bootstrap quantiles of the 95% interval

DENSE_COUNT_CELLS = 2**21  # pair_counts counts in a dense table up to this size (16 MB, ~800 systems)
RIDGE = 1e-6  # L2 strength, per battle of the system with the fewest (see the module docstring)
# A fit stops when its next Newton step would move no rating by more than this, measured by the step
# itself or predicted from the last two. The full-data fit: in logits (1e-10 logits ≈ 6e-9 points).
# A bootstrap round: in standard errors (step × √(Hessian diagonal), an upper bound), so a system
# known to ±5 points stops within ~5e-4 points and one known to ±200 points within ~0.02 points:
# far below the bootstrap's own Monte Carlo error, and a Newton step fewer per round.
POINT_TOLERANCE = 1e-10
BOOTSTRAP_TOLERANCE = 1e-4
MAX_NEWTON_STEPS = 200
LINE_SEARCH_DECREMENT = 0.5  # nats: a long step predicting a smaller decrease may be on an exponential tail
SAFE_STEP = 0.75  # logits: a Newton step moving no rating further is always taken in full
EXPAND_FROM = 0.75  # logits: a step moving a rating further is tried longer too (see `_step_size`)
MAX_EXPANSION = 16.0
CHUNK_BYTES = 48 * 2**20  # working memory of one chunk of bootstrap rounds
MAX_CHUNK_ROUNDS = 64
PARALLEL_WORK = 2e6  # rounds × (pairs + systems³/50) from which the rounds are split between threads
BLAS_THREADS_FROM = 64  # systems: OpenBLAS starts threads for factorisations about this size
CHOLESKY_FROM = 64  # systems: from here a Cholesky factorisation beats a batched LU solve

Progress = Callable[[int, int], None]  # (rounds done, rounds in all)


class DisconnectedComparisons(ValueError):
    """The systems split into groups that were never compared with each other."""

    def __init__(self, groups: list[list[str]]) -> None:
        self.groups = groups
        shown = "; ".join(_describe_group(group) for group in groups[:5])
        more = f"; and {len(groups) - 5} more groups" if len(groups) > 5 else ""
        super().__init__(
            f"The systems split into {len(groups)} groups that were never compared with each other "
            f"(directly or through other systems): {shown}{more}. Ratings across groups would not be "
            "comparable; collect battles between the groups, or rate each group on its own."
        )


def _describe_group(group: list[str]) -> str:
    names = ", ".join(group[:6]) + (f", … ({len(group)} systems)" if len(group) > 6 else "")
    return f"[{names}]"


@dataclass(frozen=True)
class PairCounts:
    """Battle outcomes aggregated per pair of systems (indices into `systems`, a != b).

    A pair may appear in either order or more than once; the fit only sums.
    """

    systems: tuple[str, ...]
    a: np.ndarray  # int64 (P,)
    b: np.ndarray  # int64 (P,)
    wins_a: np.ndarray  # float64 (P,): battles a won
    wins_b: np.ndarray  # float64 (P,): battles b won
    ties: np.ndarray  # float64 (P,): ties of either kind

    @property
    def battles(self) -> np.ndarray:
        return self.wins_a + self.wins_b + self.ties


def pair_counts(*, systems: Sequence[str], model_a: np.ndarray, model_b: np.ndarray, outcome: np.ndarray) -> PairCounts:
    """Aggregate battles: `model_a`/`model_b` are system indices, `outcome` is 1 (a won), 0 (b won)
    or 0.5 (tie) per battle."""
    n = len(systems)
    model_a = np.asarray(model_a, dtype=np.int64)
    model_b = np.asarray(model_b, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=np.float64)
    if not (len(model_a) == len(model_b) == len(outcome)):
        raise ValueError("model_a, model_b and outcome must have the same length.")
    if len(outcome) and not np.isin(outcome, (0.0, 0.5, 1.0)).all():
        raise ValueError("An outcome must be 1 (a won), 0 (b won) or 0.5 (a tie).")
    low = np.minimum(model_a, model_b)
    high = np.maximum(model_a, model_b)
    # Outcome from the low index's side: 1, 0.5 or 0 → cell 0 (low won), 1 (high won), 2 (tie).
    low_score = np.where(model_a == low, outcome, 1.0 - outcome)
    cell = np.where(low_score == 1.0, 0, np.where(low_score == 0.0, 1, 2))
    if n * n * 3 <= DENSE_COUNT_CELLS:  # a dense count table is cheapest for the usual numbers of systems
        counts = np.bincount((low * n + high) * 3 + cell, minlength=n * n * 3).reshape(n * n, 3)
        present = np.flatnonzero(counts.sum(axis=1))
        table = counts[present]
    else:
        present, inverse = np.unique(low * n + high, return_inverse=True)
        table = np.bincount(inverse * 3 + cell, minlength=len(present) * 3).reshape(len(present), 3)
    return PairCounts(
        systems=tuple(systems),
        a=(present // n).astype(np.int64),
        b=(present % n).astype(np.int64),
        wins_a=table[:, 0].astype(np.float64),
        wins_b=table[:, 1].astype(np.float64),
        ties=table[:, 2].astype(np.float64),
    )


def canonical_counts(counts: PairCounts) -> PairCounts:
    """The same battles in one canonical form: only systems with battles, sorted by name; each pair
    once, as (lower name, higher name), with duplicates and both orders summed; pairs sorted.

    Two aggregations of the same battles (SQL on the page, a file here; any system or pair order)
    give identical arrays, hence bit-identical ratings and intervals.
    """
    if not (len(counts.a) == len(counts.b) == len(counts.wins_a) == len(counts.wins_b) == len(counts.ties)):
        raise ValueError("PairCounts arrays must have the same length.")
    a = np.asarray(counts.a, dtype=np.int64)
    b = np.asarray(counts.b, dtype=np.int64)
    cells = np.stack([counts.wins_a, counts.wins_b, counts.ties]).astype(np.float64)
    if (cells < 0).any() or not np.isfinite(cells).all():
        raise ValueError("Battle counts must be finite and not negative.")
    keep = cells.sum(axis=0) > 0
    a, b, cells = a[keep], b[keep], cells[:, keep]
    if (a == b).any():
        raise ValueError(f"A system cannot battle itself: {counts.systems[int(a[a == b][0])]!r}.")
    used = np.unique(np.concatenate([a, b]))
    names = [counts.systems[i] for i in used]
    if len(set(names)) != len(names):
        raise ValueError("System names must be unique.")
    by_name = sorted(range(len(used)), key=names.__getitem__)
    position = np.full(len(counts.systems), -1, dtype=np.int64)
    position[used[by_name]] = np.arange(len(used))
    a, b = position[a], position[b]
    swap = a > b
    low, high = np.where(swap, b, a), np.where(swap, a, b)
    low_wins = np.where(swap, cells[1], cells[0])
    high_wins = np.where(swap, cells[0], cells[1])
    n = len(used)
    keys, inverse = np.unique(low * n + high, return_inverse=True)
    summed = [np.bincount(inverse, weights=values, minlength=len(keys)) for values in (low_wins, high_wins, cells[2])]
    return PairCounts(
        systems=tuple(names[i] for i in by_name),
        a=keys // n,
        b=keys % n,
        wins_a=summed[0],
        wins_b=summed[1],
        ties=summed[2],
    )


@dataclass(frozen=True)
class SystemRating:
    system: str
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    votes: int  # battles the system took part in

    def as_dict(self) -> dict[str, object]:
        return {
            "system": self.system,
            "rating": self.rating,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "rank": self.rank,
            "votes": self.votes,
        }


@dataclass(frozen=True)
class RatingResult:
    ratings: list[SystemRating]  # best first; only systems with at least one battle
    systems: tuple[str, ...]  # the order of the matrices below (those with battles, sorted by name)
    win_rate: np.ndarray  # (S, S): row's share of wins over column, ties as half; nan where none
    battles: np.ndarray  # (S, S): battles between row and column
    bootstrap: int
    seed: int
    anchor: tuple[str, float] | None


def bt_fit(counts: PairCounts, *, weights: np.ndarray | None = None, ridge: float | None = None) -> np.ndarray:
    """Bradley-Terry maximum likelihood, in logits, mean zero, one value per system in `counts.systems`.

    `weights` (3, P), if given, replaces (wins_a, wins_b, ties). A tiny L2 term (`ridge`; by default
    `ridge_for` the battles fitted) keeps systems that won or lost every battle finite (see the
    module docstring for its size); systems without battles get 0 (the mean).
    """
    n = len(counts.systems)
    wins_a, wins_b, ties = (counts.wins_a, counts.wins_b, counts.ties) if weights is None else weights
    if n == 0:
        return np.zeros(0)
    score_a = np.asarray(wins_a, dtype=np.float64) + 0.5 * np.asarray(ties, dtype=np.float64)
    total = score_a + np.asarray(wins_b, dtype=np.float64) + 0.5 * np.asarray(ties, dtype=np.float64)
    a, b = np.asarray(counts.a, dtype=np.int64), np.asarray(counts.b, dtype=np.int64)
    fitter = _BatchFitter(a, b, n, rows=1)
    if ridge is None:
        ridge = ridge_for(np.bincount(a, weights=total, minlength=n) + np.bincount(b, weights=total, minlength=n))
    with _single_threaded_blas(n):
        theta = fitter.fit(
            score_a[None, :],
            total[None, :],
            ridge,
            np.zeros((1, n)),
            POINT_TOLERANCE,
            in_standard_errors=False,
        )
    return theta[0]


def anchor_parse(text: str) -> tuple[str, float]:
    """SYSTEM=RATING -> (system, rating), split on the last '=' (a system's name may contain one, a
    rating never does). ValueError with an example when it is not that."""
    system, separator, value = text.rpartition("=")
    try:
        rating = float(value)
    except ValueError:
        rating = math.nan
    if not separator or not system or not math.isfinite(rating):
        raise ValueError(f"Give SYSTEM=RATING, e.g. my-model=1000; not {text!r}.")
    return system, rating


def to_arena_scale(logits: np.ndarray, systems: Sequence[str], anchor: tuple[str, float] | None = None) -> np.ndarray:
    ratings = logits / ALPHA + INIT_RATING
    if anchor is not None:
        name, value = anchor
        ratings = ratings + (value - ratings[..., list(systems).index(name)][..., None])
    return ratings


def ranks_from_intervals(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """rank = 1 + the number of systems whose lower bound is above this system's upper bound."""
    ci_low = np.asarray(ci_low, dtype=np.float64)
    ci_high = np.asarray(ci_high, dtype=np.float64)
    return 1 + (ci_low[None, :] > ci_high[:, None]).sum(axis=1)


def ratings_compute(
    *,
    counts: PairCounts,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> RatingResult:
    """The leaderboard: the full-data fit, bootstrap intervals (2.5% and 97.5%) and ranks.

    Raises ValueError for an anchor without battles, a negative `bootstrap`, and (as
    `DisconnectedComparisons`) systems in groups that were never compared with each other.
    `workers` caps the bootstrap's threads (default: the CPUs this process may use).
    """
    if bootstrap < 0:
        raise ValueError(f"The number of bootstrap rounds cannot be negative (got {bootstrap}).")
    counts = canonical_counts(counts)
    systems = counts.systems
    if anchor is not None and anchor[0] not in systems:
        raise ValueError(f"The anchor system {anchor[0]!r} has no battles.")
    n = len(systems)
    if n == 0:
        return RatingResult([], (), np.zeros((0, 0)), np.zeros((0, 0)), bootstrap, seed, anchor)
    _require_connected(counts)
    logits = bt_fit(counts)
    point = to_arena_scale(logits, systems, anchor)
    low, high = point.copy(), point.copy()
    if bootstrap > 0:
        samples = bootstrap_logits(counts, bootstrap, seed, progress=progress, start=logits, workers=workers)
        low, high = np.quantile(to_arena_scale(samples, systems, anchor), INTERVAL, axis=0)
    votes = _votes_per_system(counts)
    ranks = ranks_from_intervals(low, high)
    order = np.argsort(-point, kind="stable")
    ratings = [
        SystemRating(systems[i], float(point[i]), float(low[i]), float(high[i]), int(ranks[i]), int(votes[i]))
        for i in order
    ]
    battles, win_rate = _matrices(counts)
    return RatingResult(ratings, systems, win_rate, battles, bootstrap, seed, anchor)


def bootstrap_logits(
    counts: PairCounts,
    rounds: int,
    seed: int,
    *,
    progress: Progress | None = None,
    start: np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """(rounds, systems) logits, one BT fit per multinomial resample of the aggregated counts.

    Round r resamples with its own stream (`SeedSequence(seed).spawn(rounds)[r]`), so the result is
    the same whatever the chunking and threads. `start` is the full-data fit (computed if omitted).
    Every round uses the full data's ridge (`ridge_for(_votes_per_system(counts))`): a resample can
    leave a system without battles, which must not change the others' objective.
    """
    n = len(counts.systems)
    out = np.empty((rounds, n))
    if rounds == 0 or n == 0:
        return out
    cells = np.stack([counts.wins_a, counts.wins_b, counts.ties]).ravel()
    total = round(float(cells.sum()))
    if total == 0:
        out[:] = 0.0
        return out
    nonzero = np.flatnonzero(cells)  # empty cells stay empty in every resample: leave them out
    probabilities = cells[nonzero] / cells[nonzero].sum()
    start = bt_fit(counts) if start is None else np.asarray(start, dtype=np.float64)
    streams = np.random.SeedSequence(seed).spawn(rounds)
    size = _rounds_per_chunk(pairs=len(counts.a), systems=n, cells=len(nonzero))
    chunks = [range(first, min(first + size, rounds)) for first in range(0, rounds, size)]
    fitter = _BatchFitter(np.asarray(counts.a, dtype=np.int64), np.asarray(counts.b, dtype=np.int64), n, rows=size)
    pairs = len(counts.a)
    ridge = ridge_for(_votes_per_system(counts))

    def run(chunk: range) -> tuple[range, np.ndarray]:
        sample = np.zeros((len(chunk), 3 * pairs))
        for row, r in enumerate(chunk):
            sample[row, nonzero] = np.random.default_rng(streams[r]).multinomial(total, probabilities)
        wins_a, wins_b, ties = sample[:, :pairs], sample[:, pairs : 2 * pairs], sample[:, 2 * pairs :]
        score_a = wins_a + 0.5 * ties
        return chunk, fitter.fit(score_a, score_a + wins_b + 0.5 * ties, ridge, np.tile(start, (len(chunk), 1)))

    # Threads pay off only for big problems (starting them and limiting BLAS cost milliseconds).
    big = rounds * (pairs + n**3 / 50) >= PARALLEL_WORK
    threads = max(1, min(workers or _available_cpus(), len(chunks))) if big else 1
    done = 0
    with _single_threaded_blas(n), ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool:
        for chunk, theta in pool.map(run, chunks) if pool is not None else map(run, chunks):
            out[chunk.start : chunk.stop] = theta
            done += len(chunk)
            if progress is not None:
                progress(done, rounds)
    return out


class _BatchFitter:
    """Damped Newton for many BT fits over the same pairs (one per row of the weights) at once.

    Pairs may repeat and come in either order (they are merged first). The Hessian of a fit is the
    Laplacian of the comparison graph weighted by total·p·(1-p), plus the ridge; rows take their
    Newton steps together (one scatter for the gradients and Hessians, one batched LAPACK solve).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, n: int, *, rows: int) -> None:
        low, high = np.minimum(a, b), np.maximum(a, b)
        keys, self.merge = np.unique(low * n + high, return_inverse=True)
        self.swapped = a > b  # such a pair's score_a is its high system's score
        self.canonical = len(keys) == len(a) and not self.swapped.any() and bool((np.diff(keys) > 0).all())
        self.a, self.b, self.n = keys // n, keys % n, n
        self.rows = max(rows, 1)
        # Flat positions of each pair's two systems in (rows, n) arrays, row by row.
        ends = np.concatenate([self.a, self.b])
        self.scatter = ends[None, :] + (np.arange(self.rows) * n)[:, None]

    def fit(
        self,
        score_a: np.ndarray,
        total: np.ndarray,
        ridge: float,
        theta: np.ndarray,
        tolerance: float = BOOTSTRAP_TOLERANCE,
        *,
        in_standard_errors: bool = True,
    ) -> np.ndarray:
        """Minimise, per row, Σ total·softplus(d) − score_a·d + ridge/2·|θ|² with d = θ[a] − θ[b]:
        the BT negative log-likelihood with ties as half wins (score_a = wins_a + ties / 2).

        A row is done once a full Newton step is shorter than `tolerance` (standard errors, or
        logits), or once the next one is predicted to be (which saves a factorisation per round);
        the other rows go on without it.
        """
        if len(theta) > self.rows:
            raise ValueError(f"At most {self.rows} rows per fit.")
        score_a, total = self._merged(np.asarray(score_a, dtype=np.float64), np.asarray(total, dtype=np.float64))
        theta = np.array(theta, dtype=np.float64)
        theta -= theta.mean(axis=1, keepdims=True)
        # One Hessian buffer for all steps: a fresh (rows, n, n) array each step would cost as much in
        # page faults as the assembly itself.
        hessians = np.empty((len(theta), self.n, self.n))  # per call: threads share the fitter
        active = np.arange(len(theta))
        previous = np.full(len(theta), np.inf)  # the last full step's length, per row
        for _ in range(MAX_NEWTON_STEPS):
            if not active.size:
                break
            theta[active], moved, full = self._newton_step(
                theta[active], score_a[active], total[active], ridge, hessians[: len(active)], in_standard_errors
            )
            # Quadratic convergence: next ≈ C·last². C is estimated from the last two steps, but at
            # least 1 (in standard errors the log-likelihood's third derivative is bounded by about its
            # second; a big first step makes the estimate far too low).
            ratio = np.divide(moved, previous[active] ** 2, out=np.zeros(len(active)), where=previous[active] > 0)
            predicted = moved**2 * np.maximum(ratio, 1.0)
            done = full & ((moved < tolerance) | (predicted < tolerance))
            previous[active] = np.where(full, moved, np.inf)
            active = active[~done]
        return theta

    def _merged(self, score_a: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.canonical:
            return score_a, total
        score_low = np.where(self.swapped, total - score_a, score_a)
        rows, pairs = len(total), len(self.a)
        index = (self.merge[None, :] + (np.arange(rows) * pairs)[:, None]).ravel()

        def merge(values: np.ndarray) -> np.ndarray:
            return np.bincount(index, weights=values.ravel(), minlength=rows * pairs).reshape(rows, pairs)

        return merge(score_low), merge(total)

    def _newton_step(
        self,
        theta: np.ndarray,
        score_a: np.ndarray,
        total: np.ndarray,
        ridge: float,
        hessian: np.ndarray,
        in_standard_errors: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One damped Newton step per row: the new θ, how far it moved (the largest move, in standard
        errors or logits), and whether the step was full."""
        m, n = theta.shape
        diff = theta[:, self.a] - theta[:, self.b]
        p = expit(diff)
        residual = total * p - score_a  # d loss / d diff, per pair
        gradient = self._scatter(residual, -residual, m) + ridge * theta
        weight = total * p * (1.0 - p)  # d² loss / d diff², per pair
        hessian.fill(0.0)
        hessian[:, self.a, self.b] = -weight
        hessian[:, self.b, self.a] = -weight
        degree = self._scatter(weight, weight, m) + ridge
        hessian.reshape(m, n * n)[:, :: n + 1] = degree
        # The likelihood does not see a common shift of all ratings (only the ridge does, weakly):
        # a rank-one term along it keeps the solve well conditioned; steps are then re-centred.
        hessian += (degree.mean(axis=1) / n)[:, None, None]
        step = -_solve(hessian, gradient)
        decrement = -(step * gradient).sum(axis=1)  # gᵀH⁻¹g: the predicted decrease, times two
        size = np.ones(m)
        longest = np.abs(step).max(axis=1)
        # A step moving no rating more than M = SAFE_STEP logits needs no check: along it each pair's
        # curvature p(1-p) grows by a factor e^(2M) at most, so the loss drops by at least
        # δ·(1 − (e^(2M) − 1 − 2M) / 4M²) = 0.12·δ for M = 0.75 (δ = gᵀH⁻¹g, as H ≤ H + gauge).
        checked = np.flatnonzero(longest > SAFE_STEP)
        if checked.size:
            start = self._loss(theta[checked], score_a[checked], total[checked], ridge, diff[checked])
            size[checked] = self._step_size(
                theta[checked], step[checked], decrement[checked], start, score_a[checked], total[checked], ridge
            )
        theta = theta + size[:, None] * step
        theta -= theta.mean(axis=1, keepdims=True)
        # √degree ≥ 1: a system with (nearly) no information, e.g. a perfect record held up only by
        # the ridge, is measured in logits, not in its huge standard error.
        moves = np.abs(step) * np.sqrt(np.maximum(degree, 1.0)) if in_standard_errors else np.abs(step)
        return theta, size * moves.max(axis=1), size == 1.0

    def _scatter(self, at_a: np.ndarray, at_b: np.ndarray, m: int) -> np.ndarray:
        values = np.concatenate([at_a, at_b], axis=1).ravel()
        return np.bincount(self.scatter[:m].ravel(), weights=values, minlength=m * self.n).reshape(m, self.n)

    def _step_size(
        self,
        theta: np.ndarray,
        step: np.ndarray,
        decrement: np.ndarray,
        start: np.ndarray,
        score_a: np.ndarray,
        total: np.ndarray,
        ridge: float,
    ) -> np.ndarray:
        """How much of the Newton step to take, for rows far from their optimum.

        A full step can overshoot (the quadratic model is poor): halve it until the loss drops
        enough (Armijo). Or it can fall far short: a system with a perfect record in a resample heads
        for an optimum ~10 logits away (held there only by the ridge), and Newton's steps along
        that exponential tail are about one logit long; then double the step while the loss keeps
        dropping, which cuts such a round from ~12 factorisations to ~4."""
        size = np.ones(len(theta))
        loss = self._loss(theta + step, score_a, total, ridge)
        short = loss > start - 1e-4 * decrement
        halving = np.flatnonzero(short)
        for _ in range(60):
            if not halving.size:
                break
            size[halving] *= 0.5
            trial = self._loss(
                theta[halving] + size[halving, None] * step[halving], score_a[halving], total[halving], ridge
            )
            enough = trial <= start[halving] - 1e-4 * size[halving] * decrement[halving]
            halving = halving[~enough]
        best = loss
        # The tail's signature: a long step with a small predicted decrease.
        doubling = np.flatnonzero(
            ~short & (np.abs(step).max(axis=1) > EXPAND_FROM) & (decrement <= LINE_SEARCH_DECREMENT)
        )
        while doubling.size and size[doubling[0]] < MAX_EXPANSION:
            trial = self._loss(
                theta[doubling] + 2.0 * size[doubling, None] * step[doubling], score_a[doubling], total[doubling], ridge
            )
            better = trial < best[doubling]
            doubling = doubling[better]
            best[doubling] = trial[better]
            size[doubling] *= 2.0
        return size

    def _loss(
        self,
        theta: np.ndarray,
        score_a: np.ndarray,
        total: np.ndarray,
        ridge: float,
        diff: np.ndarray | None = None,
    ) -> np.ndarray:
        if diff is None:
            diff = theta[:, self.a] - theta[:, self.b]
        pairs = (total * np.logaddexp(0.0, diff) - score_a * diff).sum(axis=1)
        return pairs + 0.5 * ridge * (theta * theta).sum(axis=1)


def _solve(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Batched solve of the symmetric positive definite Newton systems.

    Large systems: Cholesky (half the work of LU; numpy releases the GIL in it), then two triangular
    solves; LU as the fallback should rounding break definiteness. Small ones: one batched LU call,
    as SciPy's triangular solves loop over the batch in Python (~20 µs a matrix)."""
    if hessian.shape[-1] < CHOLESKY_FROM:
        return np.linalg.solve(hessian, gradient[..., None])[..., 0]
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return np.linalg.solve(hessian, gradient[..., None])[..., 0]
    half = solve_triangular(factor, gradient[..., None], lower=True, check_finite=False)
    return solve_triangular(factor, half, lower=True, trans="T", check_finite=False)[..., 0]


def ridge_for(votes: np.ndarray) -> float:
    """The ridge for battles with these votes per system: `RIDGE` × the fewest any system with battles
    took part in (at least 1), so that it stays negligible next to every system's information."""
    played = np.asarray(votes, dtype=np.float64)
    played = played[played > 0]
    return RIDGE * max(float(played.min()) if played.size else 1.0, 1.0)


def _rounds_per_chunk(*, pairs: int, systems: int, cells: int) -> int:
    """Rounds fitted together: bounded by `CHUNK_BYTES` of working arrays (the resampled counts and
    about eight (rounds, pairs) temporaries, the (rounds, n, n) Hessians and their factorisation).
    Depends only on the data's shape, so results never depend on the machine."""
    per_round = 8 * (3 * pairs + cells + 10 * pairs + 2 * systems * systems)
    return int(max(1, min(MAX_CHUNK_ROUNDS, CHUNK_BYTES // max(per_round, 1))))


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _single_threaded_blas(systems: int) -> AbstractContextManager[object]:
    """Keep BLAS/LAPACK to one thread: our own threads split the rounds between cores, and a
    threaded factorisation of a few hundred rows is slower than a single-threaded one (its threads
    spin waiting for each other, badly so on a busy machine: 24 ms instead of 0.3 ms measured).
    Small matrices never start BLAS threads: nothing to limit then."""
    controller = _blas_controller() if systems >= BLAS_THREADS_FROM else None
    return controller.limit(limits=1, user_api="blas") if controller is not None else nullcontext()


@functools.cache
def _blas_controller() -> ThreadpoolController | None:
    """threadpoolctl comes with scikit-learn (a crowd-kit dependency); without it BLAS keeps its own
    threads, which only costs speed. Found once: looking the libraries up takes milliseconds."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with crowd-kit
        return None
    return ThreadpoolController()


def _require_connected(counts: PairCounts) -> None:
    n = len(counts.systems)
    graph = coo_matrix((np.ones(len(counts.a)), (counts.a, counts.b)), shape=(n, n))
    pieces, label = connected_components(graph, directed=False)
    if pieces > 1:
        groups = [[counts.systems[i] for i in np.flatnonzero(label == piece)] for piece in range(pieces)]
        groups.sort(key=lambda group: (-len(group), group[0]))
        raise DisconnectedComparisons(groups)


def _votes_per_system(counts: PairCounts) -> np.ndarray:
    n = len(counts.systems)
    total = counts.battles
    return np.bincount(counts.a, weights=total, minlength=n) + np.bincount(counts.b, weights=total, minlength=n)


def _matrices(counts: PairCounts) -> tuple[np.ndarray, np.ndarray]:
    n = len(counts.systems)
    battles = np.zeros((n, n))
    score = np.zeros((n, n))
    np.add.at(battles, (counts.a, counts.b), counts.battles)
    np.add.at(battles, (counts.b, counts.a), counts.battles)
    np.add.at(score, (counts.a, counts.b), counts.wins_a + 0.5 * counts.ties)
    np.add.at(score, (counts.b, counts.a), counts.wins_b + 0.5 * counts.ties)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(battles > 0, score / battles, np.nan)
    return battles, win_rate


def elo_online(
    *,
    systems: Sequence[str],
    model_a: np.ndarray,
    model_b: np.ndarray,
    outcome: np.ndarray,
    k: float = 4.0,
) -> dict[str, float]:
    """Online Elo over battles in the order given (oldest first), as FastChat's `compute_elo`.

    A secondary view: it depends on the order of the battles, unlike the BT fit.
    """
    ratings = [INIT_RATING] * len(systems)
    # Plain Python floats: a sequential loop over numpy scalars would be ten times slower.
    for a, b, s in zip(
        np.asarray(model_a).tolist(), np.asarray(model_b).tolist(), np.asarray(outcome).tolist(), strict=True
    ):
        expected = 1.0 / (1.0 + BASE ** ((ratings[b] - ratings[a]) / SCALE))
        ratings[a] += k * (s - expected)
        ratings[b] -= k * (s - expected)
    return {name: float(value) for name, value in zip(systems, ratings, strict=True)}
