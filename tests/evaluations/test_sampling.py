"""Sampling policies: pure functions from pair totals to a probability for every open pair."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations.sampling import (
    ACTIVE,
    BALANCED,
    POLICIES,
    UNIFORM,
    PairState,
    active_weight,
    draw,
    pair_probabilities,
)


def pair(key: int, votes: int = 0, low_wins: int = 0, high_wins: int = 0, low: int = 0, high: int = 0) -> PairState:
    return PairState(
        key=key,
        system_low=low or key * 10,
        system_high=high or key * 10 + 1,
        votes=votes,
        low_wins=low_wins,
        high_wins=high_wins,
    )


def test_ties_are_what_is_left_of_the_votes():
    assert pair(1, votes=10, low_wins=3, high_wins=4).ties == 3


def test_no_pairs_no_probabilities():
    for policy in POLICIES:
        assert pair_probabilities(policy, []) == {}


def test_unknown_policy_raises():
    with pytest.raises(ValueError, match="unknown sampling policy 'random'"):
        pair_probabilities("random", [pair(1)])


def test_uniform_gives_every_pair_the_same_share_whatever_the_votes():
    pairs = [pair(1, votes=0), pair(2, votes=40, low_wins=40), pair(3, votes=7, low_wins=3, high_wins=3)]
    assert pair_probabilities(UNIFORM, pairs) == {1: 1 / 3, 2: 1 / 3, 3: 1 / 3}


def test_balanced_picks_only_the_least_voted_pairs():
    pairs = [pair(1, votes=3), pair(2, votes=1), pair(3, votes=2), pair(4, votes=1)]
    assert pair_probabilities(BALANCED, pairs) == {2: 0.5, 4: 0.5}


def test_balanced_breaks_ties_by_the_votes_of_the_two_systems():
    # Systems 1, 2, 3; all three pairs have 1 vote, but system 1 already has many.
    pairs = [pair(12, votes=1, low=1, high=2), pair(13, votes=1, low=1, high=3), pair(23, votes=1, low=2, high=3)]
    assert pair_probabilities(BALANCED, pairs, {1: 9, 2: 1, 3: 1}) == {23: 1.0}
    assert pair_probabilities(BALANCED, pairs, {1: 2, 2: 1, 3: 2}) == {12: 0.5, 23: 0.5}


def test_balanced_without_system_votes_counts_them_as_zero():
    pairs = [pair(1, votes=0), pair(2, votes=0), pair(3, votes=5)]
    assert pair_probabilities(BALANCED, pairs) == {1: 0.5, 2: 0.5}
    assert pair_probabilities(BALANCED, pairs, {}) == {1: 0.5, 2: 0.5}


def test_active_weight_of_an_unvoted_pair():
    # p = (0 + 1) / 2 = 0.5, variance 0.25, n counted from 1.
    assert active_weight(pair(1)) == pytest.approx(math.sqrt(0.25 / 1) - math.sqrt(0.25 / 2), abs=1e-15)
    assert active_weight(pair(1)) == pytest.approx(0.1464466094067262, abs=1e-15)


def test_active_weight_counts_ties_half():
    tied = pair(1, votes=4)  # four ties
    split = pair(2, votes=4, low_wins=2, high_wins=2)
    assert tied.ties == 4
    assert active_weight(tied) == active_weight(split)


def test_active_prefers_close_contests_to_lopsided_ones():
    close = pair(1, votes=20, low_wins=10, high_wins=10)
    lopsided = pair(2, votes=20, low_wins=19, high_wins=1)
    assert active_weight(close) > active_weight(lopsided)
    probabilities = pair_probabilities(ACTIVE, [close, lopsided])
    assert probabilities[1] > 0.5 > probabilities[2]


def test_active_prefers_thinly_voted_pairs_to_well_measured_ones():
    thin = pair(1, votes=2, low_wins=1, high_wins=1)
    measured = pair(2, votes=50, low_wins=25, high_wins=25)
    assert active_weight(thin) > active_weight(measured)
    probabilities = pair_probabilities(ACTIVE, [thin, measured])
    assert probabilities[1] > 0.5 > probabilities[2]


def test_active_probabilities_for_a_small_case():
    fresh = pair(1)
    # 10 votes, all for the low system: p = (10 + 1) / 12, n = 11.
    lopsided = pair(2, votes=10, low_wins=10)
    variance = (11 / 12) * (1 / 12)
    fresh_weight = math.sqrt(0.25) - math.sqrt(0.125)
    lopsided_weight = math.sqrt(variance / 11) - math.sqrt(variance / 12)
    assert active_weight(lopsided) == pytest.approx(lopsided_weight, abs=1e-15)
    probabilities = pair_probabilities(ACTIVE, [fresh, lopsided])
    total = fresh_weight + lopsided_weight
    assert probabilities[1] == pytest.approx(fresh_weight / total, abs=1e-12)
    assert probabilities[2] == pytest.approx(lopsided_weight / total, abs=1e-12)
    assert probabilities[1] == pytest.approx(0.97635, abs=1e-5)
    assert probabilities[2] == pytest.approx(0.02365, abs=1e-5)


@st.composite
def pair_states(draw_: st.DrawFn) -> list[PairState]:
    count = draw_(st.integers(min_value=1, max_value=12))
    keys = draw_(st.lists(st.integers(min_value=1, max_value=10_000), min_size=count, max_size=count, unique=True))
    states = []
    for key in keys:
        low_wins = draw_(st.integers(min_value=0, max_value=500))
        high_wins = draw_(st.integers(min_value=0, max_value=500))
        ties = draw_(st.integers(min_value=0, max_value=500))
        low = draw_(st.integers(min_value=1, max_value=6))
        high = draw_(st.integers(min_value=low + 1, max_value=7))
        states.append(
            PairState(
                key=key,
                system_low=low,
                system_high=high,
                votes=low_wins + high_wins + ties,
                low_wins=low_wins,
                high_wins=high_wins,
            )
        )
    return states


@given(
    policy=st.sampled_from(POLICIES),
    pairs=pair_states(),
    system_votes=st.dictionaries(st.integers(1, 7), st.integers(0, 1000)),
)
def test_probabilities_sum_to_one_over_known_pairs(policy, pairs, system_votes):
    probabilities = pair_probabilities(policy, pairs, system_votes)
    assert math.isclose(math.fsum(probabilities.values()), 1.0, rel_tol=1e-9)
    assert set(probabilities) <= {p.key for p in pairs}
    assert all(0 < value <= 1 for value in probabilities.values())
    if policy in (UNIFORM, ACTIVE):
        assert set(probabilities) == {p.key for p in pairs}
    else:
        fewest = min(p.votes for p in pairs)
        assert {p.votes for p in pairs if p.key in probabilities} == {fewest}
        assert len(set(probabilities.values())) == 1


@given(pairs=pair_states())
def test_active_weights_are_positive_and_finite(pairs):
    for state in pairs:
        weight = active_weight(state)
        assert math.isfinite(weight)
        assert weight > 0


def test_draw_follows_the_probabilities():
    rng = random.Random(20240601)
    probabilities = {1: 0.5, 2: 0.3, 3: 0.2, 4: 0.0}
    counts = Counter(draw(probabilities, rng) for _ in range(20_000))
    assert set(counts) == {1, 2, 3}
    assert counts[1] / 20_000 == pytest.approx(0.5, abs=0.015)
    assert counts[2] / 20_000 == pytest.approx(0.3, abs=0.015)
    assert counts[3] / 20_000 == pytest.approx(0.2, abs=0.015)


def test_draw_is_reproducible_with_a_seed_and_certain_with_one_pair():
    probabilities = pair_probabilities(ACTIVE, [pair(1), pair(2, votes=3, low_wins=3), pair(3, votes=1)])
    first = [draw(probabilities, random.Random(7)) for _ in range(50)]
    again = [draw(probabilities, random.Random(7)) for _ in range(50)]
    assert first == again
    rng = random.Random(1)
    assert {draw({42: 1.0}, rng) for _ in range(100)} == {42}
