"""Which pair of systems a study shows next: pure functions, no database.

Each policy turns the current state of the study's system pairs into a
probability for every pair that can still take votes. Task assignment draws
from it and records the drawn pair's probability on the task, so a study can
publish how often each system was sampled and why.

- uniform:  every open pair equally likely (each pair gets the same share).
- balanced: only the least-voted open pairs; among equals, the pairs whose two
            systems have the fewest votes; then uniformly among what is left.
            Votes per pair and per system stay level.
- active:   Chiang et al. 2024 (Chatbot Arena, eq. 9): P(pair) proportional to
            sqrt(var/n) - sqrt(var/(n+1)), the shrinkage of the pair's standard
            error from one more vote. `var` is the outcome variance p(1-p) with p the
            pair's smoothed win rate (ties count half), standing in for the paper's
            IPW covariance estimate; n is counted from 1 (a pseudo-vote) so unvoted
            pairs get a finite, high weight. Close contests and thinly voted pairs
            are sampled more; lopsided, well-measured ones less.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNIFORM = "uniform"
BALANCED = "balanced"
ACTIVE = "active"
POLICIES = (UNIFORM, BALANCED, ACTIVE)


@dataclass(frozen=True)
class PairState:
    key: int
    system_low: int
    system_high: int
    votes: int
    low_wins: int
    high_wins: int

    @property
    def ties(self) -> int:
        return self.votes - self.low_wins - self.high_wins


def pair_probabilities(
    policy: str, pairs: Sequence[PairState], system_votes: Mapping[int, int] | None = None
) -> dict[int, float]:
    """Probability of each pair (by key); the values sum to 1. Empty when no pair is given."""
    if not pairs:
        return {}
    if policy == UNIFORM:
        weights = {pair.key: 1.0 for pair in pairs}
    elif policy == BALANCED:
        weights = {pair.key: 1.0 for pair in _least_voted(pairs, system_votes or {})}
    elif policy == ACTIVE:
        weights = {pair.key: active_weight(pair) for pair in pairs}
    else:
        raise ValueError(f"unknown sampling policy {policy!r}")
    total = math.fsum(weights.values())
    return {key: weight / total for key, weight in weights.items()}


def _least_voted(pairs: Sequence[PairState], system_votes: Mapping[int, int]) -> list[PairState]:
    fewest = min(pair.votes for pair in pairs)
    candidates = [pair for pair in pairs if pair.votes == fewest]

    def systems_load(pair: PairState) -> int:
        return system_votes.get(pair.system_low, 0) + system_votes.get(pair.system_high, 0)

    lightest = min(systems_load(pair) for pair in candidates)
    return [pair for pair in candidates if systems_load(pair) == lightest]


def active_weight(pair: PairState) -> float:
    win_rate = (pair.low_wins + 0.5 * pair.ties + 1.0) / (pair.votes + 2.0)
    variance = win_rate * (1.0 - win_rate)
    n = pair.votes + 1
    return math.sqrt(variance / n) - math.sqrt(variance / (n + 1))


def draw(probabilities: Mapping[int, float], rng: random.Random) -> int:
    """One key, drawn with the given probabilities (iteration order is the tie-break)."""
    keys = list(probabilities)
    return rng.choices(keys, weights=[probabilities[key] for key in keys], k=1)[0]
