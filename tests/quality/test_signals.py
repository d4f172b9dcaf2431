"""The pure signal functions on hand-made data: exact values, and crowd-kit as the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad
from scipy.stats import binomtest

from crowdplatform.quality import signals


def test_wilson_interval_of_7_out_of_10():
    low, high = signals.wilson_interval(successes=[7], trials=[10])
    # (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964
    assert low[0] == pytest.approx(0.3967781, abs=1e-7)
    assert high[0] == pytest.approx(0.8922087, abs=1e-7)


def test_wilson_interval_edges():
    low, high = signals.wilson_interval(successes=[0, 10, 0], trials=[10, 10, 0])
    assert low[0] == 0.0
    assert high[0] == pytest.approx(0.277533, abs=1e-6)
    assert low[1] == pytest.approx(0.722467, abs=1e-6)
    assert high[1] == pytest.approx(1.0)
    assert np.isnan(low[2])
    assert np.isnan(high[2])


def test_binomial_p_value_of_20_out_of_20_is_exact():
    p = signals.binomial_p_values(successes=[20], trials=[20])
    assert p[0] == 2 * 0.5**20  # 1.9073486328125e-06, exactly
    assert p[0] == binomtest(20, 20).pvalue


@pytest.mark.parametrize(("k", "n"), [(0, 1), (3, 10), (15, 30), (12, 17), (40, 100), (71, 100), (5, 5)])
def test_binomial_p_values_match_scipy_binomtest(k, n):
    assert signals.binomial_p_values(successes=[k], trials=[n])[0] == pytest.approx(binomtest(k, n).pvalue, rel=1e-12)


def test_binomial_p_value_without_trials_is_nan():
    assert np.isnan(signals.binomial_p_values(successes=[0], trials=[0])[0])


def test_longest_runs_per_group_in_time_order():
    # Rater 1: a a a b; rater 2: b b b a b (interleaved in time with rater 1).
    group = np.array([1, 2, 1, 1, 2, 2, 2, 1, 2])
    values = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1])
    groups, lengths, run_values = signals.longest_runs(group=group, values=values)
    assert groups.tolist() == [1, 2]
    assert lengths.tolist() == [3, 3]
    assert run_values.tolist() == [0, 1]


def test_longest_runs_report_the_earliest_of_equal_runs():
    groups, lengths, run_values = signals.longest_runs(group=np.array([7] * 6), values=np.array([2, 2, 3, 3, 0, 1]))
    assert (groups.tolist(), lengths.tolist(), run_values.tolist()) == ([7], [2], [2])


def test_longest_runs_of_nothing():
    groups, lengths, _ = signals.longest_runs(group=np.array([], dtype=int), values=np.array([], dtype=int))
    assert groups.size == lengths.size == 0


def test_labels_follow_the_systems_not_the_sides():
    # "A" with the pair's low response on the left and "B" with it on the right are the same label.
    choices = np.array([0, 1, 0, 1, 2, 3, -1])
    swapped = np.array([0, 1, 1, 0, 1, 1, 1])
    assert signals.labels_from_choices(choices=choices, swapped=swapped).tolist() == [0, 0, 1, 1, 2, 3, -1]


def test_agreement_with_sides_swapped():
    # Item pair 10: three raters all prefer the low response, shown on different sides.
    # Item pair 11: raters 1 and 2 agree (high), rater 3 says tie.
    rater = np.array([1, 2, 3, 1, 2, 3])
    unit = np.array([10, 10, 10, 11, 11, 11])
    choices = np.array([0, 1, 0, 1, 0, 2])  # A, B, A | B, A, tie
    swapped = np.array([0, 1, 0, 0, 1, 0])
    label = signals.labels_from_choices(choices=choices, swapped=swapped)
    others, same = signals.vote_agreement(unit=unit, label=label)
    assert others.tolist() == [2, 2, 2, 2, 2, 2]
    assert same.tolist() == [2, 2, 2, 1, 1, 0]
    groups, counted, mean = signals.group_agreement(group=rater, unit=unit, label=label)
    assert groups.tolist() == [1, 2, 3]
    assert counted.tolist() == [2, 2, 2]
    assert mean.tolist() == [0.75, 0.75, 0.5]


def test_agreement_needs_company():
    groups, counted, mean = signals.group_agreement(
        group=np.array([1, 2, 3]), unit=np.array([5, 6, 6]), label=np.array([0, 1, 0])
    )
    assert groups.tolist() == [1, 2, 3]
    assert counted.tolist() == [0, 1, 1]
    assert np.isnan(mean[0])
    assert mean[1:].tolist() == [0.0, 0.0]


def _crowdkit_alpha(unit: np.ndarray, label: np.ndarray) -> float:
    from crowdkit.metrics.data import alpha_krippendorff

    return float(alpha_krippendorff(pd.DataFrame({"task": unit, "worker": np.arange(unit.size), "label": label})))


def test_alpha_matches_crowd_kit_on_a_small_table():
    unit = np.array([1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5])
    label = np.array([0, 0, 1, 1, 1, 1, 2, 2, 0, 1, 2, 3, 3])
    ours = signals.krippendorff_alpha_nominal(unit=unit, label=label)
    assert ours == pytest.approx(_crowdkit_alpha(unit, label), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_matches_crowd_kit_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    unit = rng.integers(0, 40, 150)
    label = np.where(rng.random(150) < 0.6, unit % 4, rng.integers(0, 4, 150))
    ours = signals.krippendorff_alpha_nominal(unit=unit, label=label)
    assert ours == pytest.approx(_crowdkit_alpha(unit, label), abs=1e-12)


def test_alpha_ignores_single_ratings_and_missing_labels():
    unit = np.array([1, 1, 2, 2, 9, 3])
    label = np.array([0, 0, 1, 1, 1, -1])  # unit 9 has one rating; unit 3's only rating is missing
    assert signals.krippendorff_alpha_nominal(unit=unit, label=label) == 1.0


def test_alpha_is_undefined_without_variation_or_overlap():
    assert signals.krippendorff_alpha_nominal(unit=np.array([1, 1, 2, 2]), label=np.array([0, 0, 0, 0])) is None
    assert signals.krippendorff_alpha_nominal(unit=np.array([1, 2, 3]), label=np.array([0, 1, 0])) is None


def test_speed_threshold_is_sd_robust_deviations_below_the_typical_log_time():
    honest = [40.0, 45, 50, 35, 55, 42, 48, 38, 52, 44]
    seconds = np.array([*honest, 2.0, 3.0, 2.0])
    speed = signals.speed_threshold(seconds=seconds, sd=3.0)
    logs = np.log(seconds)
    center = float(np.median(logs))
    robust_sd = 1.4826 * float(np.median(np.abs(logs - center)))
    assert speed.typical == pytest.approx(np.exp(center))
    assert speed.log_sd == pytest.approx(robust_sd)
    assert speed.threshold == round(float(np.exp(center - 3 * robust_sd)), 2)
    assert 3.0 < speed.threshold < 35  # the 2-3 s votes are exceptionally fast, the honest ones are not


def test_the_fast_minority_cannot_hide_by_widening_the_sd():
    seconds = np.array([40.0, 45, 50, 35, 55, 42, 48, 38, 52, 44] * 3 + [2.0, 3.0, 2.0, 1.0] * 2)
    assert seconds.mean() - 3 * seconds.std(ddof=1) < 0  # the plain rule would catch nobody
    assert signals.speed_threshold(seconds=seconds, sd=3.0).threshold > 3.0


def test_skewed_but_honest_times_give_a_threshold_below_every_honest_vote():
    seconds = np.array([12.0, 15, 20, 25, 30, 35, 40, 50, 60, 90, 120, 180, 240])  # right-skewed, all plausible
    speed = signals.speed_threshold(seconds=seconds, sd=3.0)
    assert speed.threshold is not None
    assert speed.threshold < seconds.min()


def test_speed_threshold_needs_enough_votes():
    speed = signals.speed_threshold(seconds=np.array([10.0, 40.0]), sd=3.0, min_votes=10)
    assert (speed.typical, speed.log_sd, speed.threshold) == (pytest.approx(20.0), None, None)


def test_group_medians():
    groups, medians = signals.group_medians(
        group=np.array([2, 1, 1, 2, 1, 2, 2]), values=np.array([8, 3, 1, 4, 2, 1, 100.0])
    )
    assert groups.tolist() == [1, 2]
    assert medians.tolist() == [2.0, 6.0]


# --- crowd-kit models --------------------------------------------------------------------------------


def _simulated_labels(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 tasks of 4 classes, 3 labels each; workers 0-4 are 90% right, workers 5-9 answer at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 600)
    task = np.repeat(np.arange(600), 3)
    worker = rng.integers(0, 10, task.size)
    accurate = worker < 5
    right = rng.random(task.size) < 0.9
    label = np.where(accurate & right, truth[task], rng.integers(0, 4, task.size))
    return task, worker, label


def test_dawid_skene_ranks_accurate_workers_above_random_ones():
    task, worker, label = _simulated_labels(seed=42)
    skills = signals.dawid_skene_skills(task=task, worker=worker, label=label)
    assert set(skills) == set(range(10))
    assert min(skills[w] for w in range(5)) > 0.85
    assert max(skills[w] for w in range(5, 10)) < 0.4
    assert min(skills[w] for w in range(5)) > max(skills[w] for w in range(5, 10))


def test_dawid_skene_needs_enough_overlapping_votes():
    assert (
        signals.dawid_skene_skills(task=np.array([1, 1, 2]), worker=np.array([1, 2, 1]), label=np.array([0, 1, 0]))
        == {}
    )


def test_dawid_skene_failure_leaves_the_skills_empty(monkeypatch, caplog):
    import crowdkit.aggregation

    def broken(*args, **kwargs):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(crowdkit.aggregation, "DawidSkene", broken)
    task, worker, label = _simulated_labels(seed=1)
    assert signals.dawid_skene_skills(task=task, worker=worker, label=label) == {}
    assert "Dawid-Skene failed" in caplog.text


def _simulated_comparisons(seed: int) -> tuple[np.ndarray, ...]:
    """8 systems of known strength; workers 0-4 follow Bradley-Terry, workers 5-9 pick a side at random."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(-2, 2, 8)
    n = 6000
    left = rng.integers(0, 8, n)
    right = (left + rng.integers(1, 8, n)) % 8
    worker = rng.integers(0, 10, n)
    p_left = 1 / (1 + np.exp(-(strength[left] - strength[right])))
    left_wins = np.where(worker < 5, rng.random(n) < p_left, rng.random(n) < 0.5)
    return worker, left + 100, right + 100, np.where(left_wins, left, right) + 100


def test_noisy_bt_ranks_accurate_workers_above_random_ones():
    worker, left, right, winner = _simulated_comparisons(seed=7)
    skills = signals.noisy_bt_skills(worker=worker, left=left, right=right, winner=winner)
    assert set(skills) == set(range(10))
    assert min(skills[w] for w in range(5)) > 0.9
    assert max(skills[w] for w in range(5, 10)) < 0.1


def test_noisy_bt_too_few_votes_gives_nothing():
    assert signals.noisy_bt_skills(worker=[1, 2], left=[1, 1], right=[2, 2], winner=[1, 2]) == {}


def test_noisy_bt_gradient_is_the_gradient_of_crowd_kits_likelihood():
    from crowdkit.aggregation import NoisyBradleyTerry

    rng = np.random.default_rng(3)
    labels, workers = 4, 3
    left = rng.integers(1, labels + 1, 40)
    right = (left % labels) + 1
    won = np.where(rng.random(40) < 0.5, left, right)
    data = np.stack([left, right, won], axis=1)
    who = rng.integers(0, workers, 40)
    x0 = rng.normal(size=1 + labels + 2 * workers)
    args = (data, who, labels, workers, 0.01)
    error = check_grad(
        lambda x: NoisyBradleyTerry._compute_log_likelihood(x, *args),
        lambda x: signals.noisy_bt_gradient(x, *args),
        x0,
    )
    assert error < 1e-5
