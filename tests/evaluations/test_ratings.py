"""The ratings engine (evaluations/ratings.py): small cases worked out by hand, agreement with an
independent logistic-regression fit, bootstrap coverage, determinism, order invariance, edge cases."""

from __future__ import annotations

import math
import random
import tracemalloc

import numpy as np
import pytest
from scipy.optimize import brentq
from sklearn.linear_model import LogisticRegression

from evaluations import ratings
from evaluations.ratings import (
    ALPHA,
    INIT_RATING,
    DisconnectedComparisons,
    PairCounts,
    bootstrap_logits,
    bt_fit,
    canonical_counts,
    elo_online,
    pair_counts,
    ranks_from_intervals,
    ratings_compute,
)

# The ridge that keeps perfect records finite (λ = 1e-6 × the fewest battles of a system) moves
# these tiny examples by ~5e-4 points.
RIDGE_SLACK = 1e-3


def table(*rows: tuple[str, str, float, float, float]) -> PairCounts:
    """PairCounts from (system a, system b, a's wins, b's wins, ties) rows; systems in order of appearance."""
    systems: list[str] = []
    for a, b, *_ in rows:
        systems += [name for name in (a, b) if name not in systems]
    index = {name: i for i, name in enumerate(systems)}
    return PairCounts(
        systems=tuple(systems),
        a=np.array([index[row[0]] for row in rows], dtype=np.int64),
        b=np.array([index[row[1]] for row in rows], dtype=np.int64),
        wins_a=np.array([row[2] for row in rows], dtype=np.float64),
        wins_b=np.array([row[3] for row in rows], dtype=np.float64),
        ties=np.array([row[4] for row in rows], dtype=np.float64),
    )


def by_system(result: ratings.RatingResult) -> dict[str, ratings.SystemRating]:
    return {rating.system: rating for rating in result.ratings}


def simulated_battles(
    strengths: list[float], battles: int, seed: int, tie_rate: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random pairs; a's expected score (ties as half) is exactly the BT probability of its strength gap."""
    rng = np.random.default_rng(seed)
    strength = np.asarray(strengths)
    n = len(strength)
    model_a = rng.integers(0, n, battles)
    model_b = (model_a + rng.integers(1, n, battles)) % n
    p_a = 1.0 / (1.0 + np.exp(strength[model_b] - strength[model_a]))
    p_tie = tie_rate * 4.0 * p_a * (1.0 - p_a)
    u = rng.random(battles)
    outcome = np.where(u < p_tie, 0.5, np.where(u < p_tie + p_a - p_tie / 2.0, 1.0, 0.0))
    return model_a, model_b, outcome


# --- exact small cases -------------------------------------------------------------------------


def test_three_wins_to_one_is_a_gap_of_400_log10_3():
    result = ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=0)
    a, b = result.ratings
    assert (a.system, b.system) == ("A", "B")
    # The likelihood is maximal where σ(gap) = 3/4: a gap of ln 3 logits = 400·log10(3) points.
    assert a.rating - b.rating == pytest.approx(400 * math.log10(3), abs=RIDGE_SLACK)
    assert a.rating == pytest.approx(1000 + 200 * math.log10(3), abs=RIDGE_SLACK)
    # Exactly, with the ridge λ = 1e-6 × 4 battles: A's logit x = −B's solves 4·σ(2x) − 3 + λ·x = 0.
    ridge = 4e-6
    x = brentq(lambda x: 4 / (1 + math.exp(-2 * x)) - 3 + ridge * x, 0.0, 2.0, xtol=1e-15)
    assert a.rating == pytest.approx(x / ALPHA + INIT_RATING, abs=1e-9)
    assert (a.rating + b.rating) / 2 == pytest.approx(INIT_RATING, abs=1e-9)
    assert (a.ci_low, a.ci_high, a.rank, a.votes) == (a.rating, a.rating, 1, 4)
    assert (b.ci_low, b.ci_high, b.rank, b.votes) == (b.rating, b.rating, 2, 4)


def test_a_tie_is_half_a_win_for_each_side():
    decisive = ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=50)
    with_ties = ratings_compute(counts=table(("A", "B", 2, 0, 2)), bootstrap=50)
    # 2 wins + 2 ties = 3 points to 1 over 4 battles: the same likelihood, so the same fit.
    assert [r.rating for r in with_ties.ratings] == [r.rating for r in decisive.ratings]


def test_both_kinds_of_tie_count_alike_when_aggregated():
    counts = pair_counts(
        systems=["A", "B"],
        model_a=np.array([0, 0, 1, 0]),
        model_b=np.array([1, 1, 0, 1]),
        outcome=np.array([1.0, 0.5, 0.5, 0.0]),  # a win, a tie, a (both bad) tie, a loss
    )
    assert (counts.a.tolist(), counts.b.tolist()) == ([0], [1])
    assert (counts.wins_a.tolist(), counts.wins_b.tolist(), counts.ties.tolist()) == ([1.0], [1.0], [2.0])


def test_pair_counts_aggregates_both_orders_and_refuses_other_outcomes():
    counts = pair_counts(
        systems=["A", "B", "C"],
        model_a=np.array([2, 0, 1, 2]),
        model_b=np.array([0, 2, 2, 1]),
        outcome=np.array([1.0, 1.0, 0.0, 0.5]),
    )
    # (A, C): C won once as a, A once as a; (B, C): C won once as b, one tie.
    assert counts.a.tolist() == [0, 1]
    assert counts.b.tolist() == [2, 2]
    assert counts.wins_a.tolist() == [1.0, 0.0]
    assert counts.wins_b.tolist() == [1.0, 1.0]
    assert counts.ties.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="An outcome must be 1"):
        pair_counts(systems=["A", "B"], model_a=np.array([0]), model_b=np.array([1]), outcome=np.array([0.7]))


def test_pair_counts_is_the_same_for_many_systems(monkeypatch):
    rng = np.random.default_rng(3)
    model_a = rng.integers(0, 50, 2_000)
    model_b = (model_a + rng.integers(1, 50, 2_000)) % 50
    outcome = rng.choice([0.0, 0.5, 1.0], 2_000)
    names = [f"s{i}" for i in range(50)]
    dense = pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome)
    monkeypatch.setattr(ratings, "DENSE_COUNT_CELLS", 0)  # as for thousands of systems: sort, not a table
    sparse = pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome)
    for field in ("a", "b", "wins_a", "wins_b", "ties"):
        assert np.array_equal(getattr(dense, field), getattr(sparse, field))


def test_rank_rule_on_hand_made_intervals():
    low = np.array([10.0, 5.0, 0.0, -20.0])
    high = np.array([20.0, 12.0, 9.0, -10.0])
    # 3rd: only the 1st's lower bound (10) is above its upper bound (9); 4th: three are above −10.
    assert ranks_from_intervals(low, high).tolist() == [1, 1, 2, 4]


def test_ranks_in_a_result_follow_the_rule():
    model_a, model_b, outcome = simulated_battles([0.0, 0.1, 0.9, 1.0, 2.0], 600, seed=3)
    counts = pair_counts(systems=list("ABCDE"), model_a=model_a, model_b=model_b, outcome=outcome)
    result = ratings_compute(counts=counts, bootstrap=200)
    low = np.array([r.ci_low for r in result.ratings])
    high = np.array([r.ci_high for r in result.ratings])
    assert [r.rank for r in result.ratings] == ranks_from_intervals(low, high).tolist()
    assert result.ratings[0].rank == 1


def test_anchor_sets_one_system_and_keeps_the_gaps():
    plain = by_system(ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=100))
    anchored = by_system(ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=100, anchor=("B", 1200.0)))
    assert anchored["B"].rating == 1200.0
    assert (anchored["B"].ci_low, anchored["B"].ci_high) == (1200.0, 1200.0)  # the gauge: B is fixed
    assert anchored["A"].rating - 1200.0 == pytest.approx(plain["A"].rating - plain["B"].rating, abs=1e-9)


def test_an_anchor_without_battles_is_refused():
    with pytest.raises(ValueError, match=r"^The anchor system 'Z' has no battles\.$"):
        ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=0, anchor=("Z", 1200.0))


def test_win_rate_and_battle_matrices_and_votes_are_exact():
    result = ratings_compute(counts=table(("A", "B", 3, 1, 2), ("C", "B", 1, 0, 1)), bootstrap=0)
    assert result.systems == ("A", "B", "C")
    assert result.battles.tolist() == [[0, 6, 0], [6, 0, 2], [0, 2, 0]]
    expected = [[None, 4 / 6, None], [2 / 6, None, 0.5 / 2], [None, 1.5 / 2, None]]
    got = [[None if math.isnan(v) else v for v in row] for row in result.win_rate.tolist()]
    assert got == expected
    assert {r.system: r.votes for r in result.ratings} == {"A": 6, "B": 8, "C": 2}


def test_online_elo_matches_a_hand_computation():
    elo = elo_online(
        systems=["A", "B"], model_a=np.array([0, 1]), model_b=np.array([1, 0]), outcome=np.array([1.0, 1.0])
    )
    # Battle 1: equal ratings, expected 0.5, A wins: A = 1002, B = 998 (k = 4).
    # Battle 2: B (as model_a) beats A; B's expected score is 1 / (1 + 10^((1002 − 998) / 400)).
    expected_b = 1 / (1 + 10 ** (4 / 400))
    assert elo["B"] == pytest.approx(998 + 4 * (1 - expected_b), abs=1e-12)
    assert elo["A"] == pytest.approx(1002 - 4 * (1 - expected_b), abs=1e-12)


# --- agreement with the truth and with an independent fit ------------------------------------------


def test_simulated_strengths_are_recovered_in_order():
    strengths = [-1.5, -1.0, -0.6, -0.2, 0.2, 0.6, 1.0, 1.5]
    names = ["h", "c", "f", "a", "g", "b", "e", "d"]  # true order h < c < f < … < d
    model_a, model_b, outcome = simulated_battles(strengths, 30_000, seed=11)
    result = ratings_compute(
        counts=pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome), bootstrap=100
    )
    assert [r.system for r in result.ratings] == list(reversed(names))
    assert [r.rank for r in result.ratings] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_fit_agrees_with_logistic_regression_on_the_expanded_battles():
    names = ["m0", "m1", "m2", "m3", "m4", "m5"]
    model_a, model_b, outcome = simulated_battles([-0.8, -0.3, 0.0, 0.2, 0.6, 1.1], 4_000, seed=5)
    # One row per battle, one column per system: +ALPHA for model_a, −ALPHA for model_b, so the
    # coefficients are ratings in points. A win is one row (y = 1 or 0); a tie is one a-win row and one
    # b-win row, each with weight 1/2. C = inf is `penalty=None` in scikit-learn ≥ 1.8.
    rows, labels, weights = [], [], []
    for a, b, score in zip(model_a.tolist(), model_b.tolist(), outcome.tolist(), strict=True):
        x = np.zeros(len(names))
        x[a], x[b] = ALPHA, -ALPHA
        for label, weight in ((1, score), (0, 1.0 - score)):
            if weight:
                rows.append(x)
                labels.append(label)
                weights.append(weight)
    reference = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-12, max_iter=10_000)
    reference.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    coefficients = reference.coef_[0]
    expected = dict(zip(names, coefficients - coefficients.mean() + INIT_RATING, strict=True))
    result = ratings_compute(
        counts=pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome), bootstrap=0
    )
    differences = [abs(r.rating - expected[r.system]) for r in result.ratings]
    assert max(differences) < 0.5  # the issue's bound (in practice ~1e-3: the ridge and the solvers' tolerances)


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    strengths = np.array([-0.6, -0.2, 0.0, 0.3, 0.7])
    truth = (strengths - strengths.mean()) / ALPHA + INIT_RATING
    names = ["s0", "s1", "s2", "s3", "s4"]
    inside = 0
    datasets = 200
    for dataset in range(datasets):
        model_a, model_b, outcome = simulated_battles(strengths.tolist(), 500, seed=1000 + dataset)
        counts = pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome)
        result = ratings_compute(counts=counts, bootstrap=200, seed=dataset)
        for rating in result.ratings:
            inside += rating.ci_low <= truth[names.index(rating.system)] <= rating.ci_high
    coverage = inside / (datasets * len(names))
    # 1,000 interval checks: a binomial sd of 0.7 points at 95%; ±3 sd, a little more below, where a
    # percentile bootstrap of a few hundred battles is known to fall slightly short. Seeded: no flakes.
    assert 0.925 <= coverage <= 0.97, coverage


# --- the fast bootstrap is the plain one, reproducibly -------------------------------------------------


def test_batched_bootstrap_equals_one_fit_per_resample():
    model_a, model_b, outcome = simulated_battles([0.0, 0.4, -0.5, 1.2], 300, seed=2)
    counts = canonical_counts(pair_counts(systems=list("ABCD"), model_a=model_a, model_b=model_b, outcome=outcome))
    samples = bootstrap_logits(counts, 20, seed=9)
    cells = np.stack([counts.wins_a, counts.wins_b, counts.ties])
    streams = np.random.SeedSequence(9).spawn(20)
    # Every round keeps the full data's ridge (a resample may leave a system without battles).
    votes = np.bincount(counts.a, counts.battles, 4) + np.bincount(counts.b, counts.battles, 4)
    ridge = ratings.ridge_for(votes)
    for r in range(20):
        drawn = np.random.default_rng(streams[r]).multinomial(int(cells.sum()), (cells / cells.sum()).ravel())
        one_fit = bt_fit(counts, weights=drawn.reshape(cells.shape).astype(float), ridge=ridge)
        # Bootstrap fits stop at 1e-4 standard errors (here ~0.1 logit): far below 1e-4 logits.
        assert np.abs(samples[r] - one_fit).max() < 1e-4


def test_bootstrap_does_not_depend_on_threads_or_chunking(monkeypatch):
    model_a, model_b, outcome = simulated_battles([0.0, 0.4, -0.5, 1.2, 0.8], 800, seed=4)
    counts = pair_counts(systems=list("ABCDE"), model_a=model_a, model_b=model_b, outcome=outcome)
    one_thread = bootstrap_logits(counts, 150, seed=1, workers=1)
    two_threads = bootstrap_logits(counts, 150, seed=1, workers=2)
    monkeypatch.setattr(ratings, "MAX_CHUNK_ROUNDS", 7)
    small_chunks = bootstrap_logits(counts, 150, seed=1, workers=2)
    assert np.array_equal(one_thread, two_threads)
    np.testing.assert_allclose(small_chunks, one_thread, rtol=0, atol=1e-9)


def test_same_seed_same_numbers_other_seed_other_intervals():
    model_a, model_b, outcome = simulated_battles([0.0, 0.4, -0.5, 1.2], 400, seed=8)
    counts = pair_counts(systems=list("ABCD"), model_a=model_a, model_b=model_b, outcome=outcome)
    first = ratings_compute(counts=counts, bootstrap=300, seed=42)
    again = ratings_compute(counts=counts, bootstrap=300, seed=42)
    other = ratings_compute(counts=counts, bootstrap=300, seed=43)
    assert first.ratings == again.ratings
    assert [r.rating for r in other.ratings] == [r.rating for r in first.ratings]
    assert [r.ci_low for r in other.ratings] != [r.ci_low for r in first.ratings]


def test_progress_reports_rounds_done_up_to_all():
    calls: list[tuple[int, int]] = []
    ratings_compute(
        counts=table(("A", "B", 3, 1, 0), ("B", "C", 2, 2, 1)), bootstrap=150, progress=lambda *c: calls.append(c)
    )
    assert calls[-1] == (150, 150)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert {total for _, total in calls} == {150}


def test_bootstrap_memory_stays_within_the_chunk_budget(monkeypatch):
    # 120 systems, ~7,000 pairs: unchunked, 100 rounds would hold ~125 MB of samples and Hessians.
    strengths = np.random.default_rng(0).normal(0.0, 1.0, 120).tolist()
    model_a, model_b, outcome = simulated_battles(strengths, 60_000, seed=1)
    names = [f"s{i:03d}" for i in range(120)]
    counts = canonical_counts(pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome))
    start = bt_fit(counts)
    monkeypatch.setattr(ratings, "CHUNK_BYTES", 4 * 2**20)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        bootstrap_logits(counts, 100, seed=0, start=start, workers=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * ratings.CHUNK_BYTES


# --- order invariance: the page (SQL, ids) and compute_ratings (a file) agree bit for bit -------------


def test_the_same_battles_give_identical_results_however_aggregated():
    names = ["gpt", "claude", "llama", "mistral", "qwen"]
    model_a, model_b, outcome = simulated_battles([0.5, 0.6, -0.2, -0.4, 0.1], 900, seed=21)
    in_order = pair_counts(systems=names, model_a=model_a, model_b=model_b, outcome=outcome)

    # The same battles: shuffled, sides swapped, systems listed in another order.
    rng = np.random.default_rng(0)
    shuffle = rng.permutation(len(outcome))
    permuted = ["qwen", "llama", "gpt", "mistral", "claude"]
    new_index = np.array([permuted.index(name) for name in names])
    swapped = pair_counts(
        systems=permuted,
        model_a=new_index[model_b[shuffle]],
        model_b=new_index[model_a[shuffle]],
        outcome=1.0 - outcome[shuffle],
    )
    # And as raw rows with each pair split in two, one of them the other way round (as a GROUP BY on
    # (system_a, system_b) gives), plus a system without battles.
    half = len(in_order.a) // 2
    split = PairCounts(
        systems=(*names, "unused"),
        a=np.concatenate([in_order.a[:half], in_order.b[half:], in_order.a[half:]]),
        b=np.concatenate([in_order.b[:half], in_order.a[half:], in_order.b[half:]]),
        wins_a=np.concatenate([in_order.wins_a[:half], in_order.wins_b[half:], np.zeros(len(in_order.a) - half)]),
        wins_b=np.concatenate([in_order.wins_b[:half], in_order.wins_a[half:], np.zeros(len(in_order.a) - half)]),
        ties=np.concatenate([in_order.ties[:half], np.zeros(len(in_order.a) - half), in_order.ties[half:]]),
    )
    results = [ratings_compute(counts=counts, bootstrap=200, seed=5) for counts in (in_order, swapped, split)]
    for other in results[1:]:
        assert other.ratings == results[0].ratings  # bit-identical ratings and intervals
        assert other.systems == results[0].systems == tuple(sorted(names))
        assert np.array_equal(other.battles, results[0].battles)
        assert np.array_equal(other.win_rate, results[0].win_rate, equal_nan=True)


def test_canonical_counts_sorts_systems_and_pairs_and_sums_duplicates():
    canonical = canonical_counts(table(("C", "A", 1, 2, 0), ("A", "C", 3, 0, 1), ("B", "A", 0, 0, 0)))
    assert canonical.systems == ("A", "C")  # B has no battles
    assert (canonical.a.tolist(), canonical.b.tolist()) == ([0], [1])
    # A's wins over C: 2 (as b) + 3 (as a); C's: 1 + 0; ties: 1.
    assert (canonical.wins_a.tolist(), canonical.wins_b.tolist(), canonical.ties.tolist()) == ([5.0], [1.0], [1.0])


# --- edge cases ----------------------------------------------------------------------------------------


def test_no_battles_and_a_single_system_give_an_empty_leaderboard():
    empty = PairCounts(("A", "B"), *(np.zeros(0, dtype=np.int64),) * 2, *(np.zeros(0),) * 3)
    single = PairCounts(("A",), *(np.zeros(0, dtype=np.int64),) * 2, *(np.zeros(0),) * 3)
    for counts in (empty, single):
        result = ratings_compute(counts=counts, bootstrap=100)
        assert (result.ratings, result.systems) == ([], ())
        assert result.win_rate.shape == result.battles.shape == (0, 0)


def test_a_system_that_won_every_battle_stays_finite():
    result = by_system(ratings_compute(counts=table(("A", "B", 5, 0, 0), ("B", "C", 3, 2, 1)), bootstrap=200))
    values = [v for r in result.values() for v in (r.rating, r.ci_low, r.ci_high)]
    assert all(math.isfinite(v) for v in values)
    assert result["A"].rating > result["B"].rating > result["C"].rating
    assert result["A"].rank == 1


def test_systems_in_groups_that_never_met_are_refused_with_the_groups_named():
    counts = table(("A", "B", 3, 1, 0), ("C", "D", 1, 1, 0), ("E", "C", 0, 2, 0))
    with pytest.raises(DisconnectedComparisons) as caught:
        ratings_compute(counts=counts, bootstrap=0)
    assert isinstance(caught.value, ValueError)  # the leaderboard shows any ValueError's message
    assert caught.value.groups == [["C", "D", "E"], ["A", "B"]]
    assert str(caught.value) == (
        "The systems split into 2 groups that were never compared with each other (directly or through "
        "other systems): [C, D, E]; [A, B]. Ratings across groups would not be comparable; collect battles "
        "between the groups, or rate each group on its own."
    )


def test_bad_counts_and_options_are_refused():
    with pytest.raises(ValueError, match="cannot battle itself: 'A'"):
        ratings_compute(counts=PairCounts(("A", "B"), np.array([0]), np.array([0]), *(np.ones(1),) * 3), bootstrap=0)
    with pytest.raises(ValueError, match="cannot be negative"):
        ratings_compute(counts=table(("A", "B", 3, 1, 0)), bootstrap=-1)
    with pytest.raises(ValueError, match="finite and not negative"):
        ratings_compute(counts=table(("A", "B", 3, -1, 0)), bootstrap=0)


def test_bt_fit_keeps_the_given_system_order_with_zero_for_systems_without_battles():
    logits = bt_fit(table(("B", "A", 1, 3, 0), ("B", "C", 0, 0, 0)))  # systems B, A, C
    assert logits[0] - logits[1] == pytest.approx(-math.log(3), abs=1e-5)
    assert logits.sum() == pytest.approx(0.0, abs=1e-12)
    assert logits[2] == pytest.approx(0.0, abs=1e-12)


def test_random_battle_orders_do_not_change_elo_inputs_only_the_fit_stays():
    # Elo depends on the order of battles (it is a secondary view); the BT fit does not.
    battles = [(0, 1, 1.0)] * 5 + [(1, 0, 1.0)] * 3
    shuffled = battles[:]
    random.Random(1).shuffle(shuffled)
    elos = [
        elo_online(
            systems=["A", "B"],
            model_a=np.array([a for a, _, _ in rows]),
            model_b=np.array([b for _, b, _ in rows]),
            outcome=np.array([s for _, _, s in rows]),
        )
        for rows in (battles, shuffled)
    ]
    assert elos[0] != elos[1]
    fits = [
        ratings_compute(
            counts=pair_counts(
                systems=["A", "B"],
                model_a=np.array([a for a, _, _ in rows]),
                model_b=np.array([b for _, b, _ in rows]),
                outcome=np.array([s for _, _, s in rows]),
            ),
            bootstrap=0,
        ).ratings
        for rows in (battles, shuffled)
    ]
    assert fits[0] == fits[1]


def test_the_ridge_moves_a_well_posed_fit_by_thousandths_of_a_point(monkeypatch):
    # Many battles among six systems, and a seventh with 3 battles: it sets λ = 3e-6.
    model_a, model_b, outcome = simulated_battles([-0.8, -0.3, 0.0, 0.2, 0.6, 1.1], 20_000, seed=6)
    model_a = np.concatenate([model_a, [6, 6, 0]])
    model_b = np.concatenate([model_b, [1, 2, 6]])
    outcome = np.concatenate([outcome, [1.0, 0.0, 1.0]])
    counts = pair_counts(systems=list("ABCDEFG"), model_a=model_a, model_b=model_b, outcome=outcome)
    with_ridge = by_system(ratings_compute(counts=counts, bootstrap=0))
    monkeypatch.setattr(ratings, "RIDGE", 1e-15)  # as good as the plain maximum likelihood
    plain = by_system(ratings_compute(counts=counts, bootstrap=0))
    assert max(abs(with_ridge[s].rating - plain[s].rating) for s in plain) < 1e-3
