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

NOTE: this first version is a correct but simple reference implementation (one scipy fit per
bootstrap round); the fast batched version replaces its internals behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
ALPHA = np.log(BASE) / SCALE  # logits per rating point
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
DEFAULT_BOOTSTRAP = 1000

Progress = Callable[[int, int], None]  # (rounds done, rounds in all)


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
    low = np.minimum(model_a, model_b)
    high = np.maximum(model_a, model_b)
    # Outcome from the low index's side: 1, 0.5 or 0.
    low_score = np.where(model_a == low, outcome, 1.0 - outcome)
    key = low * n + high
    cells = key * 3 + np.where(low_score == 1.0, 0, np.where(low_score == 0.0, 1, 2))
    counts = np.bincount(cells, minlength=n * n * 3).reshape(n * n, 3)
    present = np.flatnonzero(counts.sum(axis=1))
    return PairCounts(
        systems=tuple(systems),
        a=(present // n).astype(np.int64),
        b=(present % n).astype(np.int64),
        wins_a=counts[present, 0].astype(np.float64),
        wins_b=counts[present, 1].astype(np.float64),
        ties=counts[present, 2].astype(np.float64),
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
    systems: tuple[str, ...]  # the order of the matrices below (those with battles)
    win_rate: np.ndarray  # (S, S): row's share of wins over column, ties as half; nan where none
    battles: np.ndarray  # (S, S): battles between row and column
    bootstrap: int
    seed: int
    anchor: tuple[str, float] | None


def bt_fit(counts: PairCounts, *, weights: np.ndarray | None = None) -> np.ndarray:
    """Bradley-Terry maximum likelihood, in logits, mean zero, one value per system in `counts.systems`.

    `weights` (3, P), if given, replaces (wins_a, wins_b, ties). A tiny L2 term keeps systems that
    won or lost every battle finite (it moves well-determined ratings by far less than 0.01 point).
    """
    n = len(counts.systems)
    wa, wb, t = (counts.wins_a, counts.wins_b, counts.ties) if weights is None else weights
    score_a = wa + 0.5 * t
    score_b = wb + 0.5 * t
    total = score_a + score_b
    a, b = counts.a, counts.b
    ridge = 1e-6 * max(float(total.sum()), 1.0) / max(n, 1)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[a] - theta[b]
        # -log sigmoid(d) = logaddexp(0, -d)
        loss = float(np.sum(score_a * np.logaddexp(0.0, -diff) + score_b * np.logaddexp(0.0, diff)))
        p = 1.0 / (1.0 + np.exp(-diff))
        g_pair = total * p - score_a  # d loss / d diff
        grad = np.bincount(a, weights=g_pair, minlength=n) - np.bincount(b, weights=g_pair, minlength=n)
        loss += 0.5 * ridge * float(theta @ theta)
        grad += ridge * theta
        return loss, grad

    result = minimize(loss_and_grad, np.zeros(n), jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "maxiter": 1000})
    theta = result.x
    return theta - theta.mean()


def to_arena_scale(logits: np.ndarray, systems: Sequence[str], anchor: tuple[str, float] | None = None) -> np.ndarray:
    ratings = logits / ALPHA + INIT_RATING
    if anchor is not None:
        name, value = anchor
        ratings = ratings + (value - ratings[..., list(systems).index(name)][..., None])
    return ratings


def ratings_compute(
    *,
    counts: PairCounts,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    anchor: tuple[str, float] | None = None,
    progress: Progress | None = None,
) -> RatingResult:
    """The leaderboard: the full-data fit, bootstrap intervals (2.5% and 97.5%) and ranks."""
    counts = _only_battled(counts)
    systems = counts.systems
    if anchor is not None and anchor[0] not in systems:
        raise ValueError(f"The anchor system {anchor[0]!r} has no battles.")
    n = len(systems)
    if n == 0:
        return RatingResult([], (), np.zeros((0, 0)), np.zeros((0, 0)), bootstrap, seed, anchor)
    point = to_arena_scale(bt_fit(counts), systems, anchor)
    low, high = point.copy(), point.copy()
    if bootstrap > 0:
        samples = to_arena_scale(_bootstrap_logits(counts, bootstrap, seed, progress), systems, anchor)
        low, high = np.quantile(samples, [0.025, 0.975], axis=0)
    votes = _votes_per_system(counts)
    ranks = [1 + int(np.sum(low > high[i])) for i in range(n)]
    order = np.argsort(-point, kind="stable")
    ratings = [
        SystemRating(systems[i], float(point[i]), float(low[i]), float(high[i]), ranks[i], int(votes[i])) for i in order
    ]
    battles, win_rate = _matrices(counts)
    return RatingResult(ratings, systems, win_rate, battles, bootstrap, seed, anchor)


def _bootstrap_logits(counts: PairCounts, rounds: int, seed: int, progress: Progress | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = np.stack([counts.wins_a, counts.wins_b, counts.ties])  # (3, P)
    flat = cells.ravel()
    total = int(flat.sum())
    out = np.empty((rounds, len(counts.systems)))
    for r in range(rounds):
        sample = rng.multinomial(total, flat / total).reshape(cells.shape).astype(np.float64)
        out[r] = bt_fit(counts, weights=sample)
        if progress is not None:
            progress(r + 1, rounds)
    return out


def _only_battled(counts: PairCounts) -> PairCounts:
    """Drop systems without battles (they have no rating) and renumber."""
    keep = counts.battles > 0
    used = np.unique(np.concatenate([counts.a[keep], counts.b[keep]]))
    index = np.full(len(counts.systems), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return PairCounts(
        systems=tuple(counts.systems[i] for i in used),
        a=index[counts.a[keep]],
        b=index[counts.b[keep]],
        wins_a=counts.wins_a[keep],
        wins_b=counts.wins_b[keep],
        ties=counts.ties[keep],
    )


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
    ratings = np.full(len(systems), INIT_RATING)
    for a, b, s in zip(
        np.asarray(model_a).tolist(), np.asarray(model_b).tolist(), np.asarray(outcome).tolist(), strict=True
    ):
        expected = 1.0 / (1.0 + BASE ** ((ratings[b] - ratings[a]) / SCALE))
        ratings[a] += k * (s - expected)
        ratings[b] -= k * (s - expected)
    return {name: float(value) for name, value in zip(systems, ratings, strict=True)}
