"""The quality signals as pure, vectorised functions over numpy arrays (no Django here).

`refresh.py` loads a study's votes as integer arrays and calls these; the tests call them on
hand-made data. Conventions shared by every function:

- a *choice* is coded 0 = "A" (left), 1 = "B" (right), 2 = tie, 3 = both bad, as shown to the rater;
- a *label* is the choice mapped to the item pair rather than to the screen, because the sides are
  drawn at random per task: 0 = the pair's low response won, 1 = its high response won, 2 = tie,
  3 = both bad (`labels_from_choices`). Agreement, Krippendorff's alpha and Dawid-Skene use labels;
  position bias uses choices;
- "per group" results come back as arrays aligned with `np.unique(group)` unless said otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.special import expit

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

CHOICE_A, CHOICE_B, CHOICE_TIE, CHOICE_BOTH_BAD = 0, 1, 2, 3
CHOICE_CODES = {"a": CHOICE_A, "b": CHOICE_B, "tie": CHOICE_TIE, "both_bad": CHOICE_BOTH_BAD}
LABEL_NAMES = ("low", "high", "tie", "both_bad")
Z_95 = 1.959963984540054  # the 97.5% normal quantile: a two-sided 95% interval


# --- Labels -------------------------------------------------------------------------------------------


def labels_from_choices(*, choices: IntArray, swapped: IntArray) -> IntArray:
    """Map screen choices to item-pair labels: "A" on a task whose left response is the pair's high one
    (`swapped` true) is a win for the high response. Ties and both-bad do not depend on the sides;
    a missing choice (negative, e.g. a criterion not answered) stays negative."""
    choices = np.asarray(choices, dtype=np.int64)
    sided = (choices == CHOICE_A) | (choices == CHOICE_B)
    return np.where(sided, choices ^ np.asarray(swapped, dtype=np.int64), choices)


# --- Gold accuracy ------------------------------------------------------------------------------------


def wilson_interval(
    *, successes: npt.ArrayLike, trials: npt.ArrayLike, z: float = Z_95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a proportion (95% by default); NaN where there are no trials.

    Wilson rather than the normal approximation because gold counts are small and often near 0 or 1,
    where the normal interval leaves [0, 1] or collapses to a point."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


# --- Position bias ------------------------------------------------------------------------------------


def binomial_p_values(*, successes: npt.ArrayLike, trials: npt.ArrayLike) -> FloatArray:
    """Two-sided exact binomial test against 1/2, vectorised; NaN where there are no trials.

    At p = 1/2 the distribution is symmetric, so scipy's `binomtest(k, n).pvalue` (which sums the
    outcomes no likelier than k) equals twice the smaller tail, capped at 1; the tests check this."""
    k = np.asarray(successes, dtype=np.int64)
    n = np.asarray(trials, dtype=np.int64)
    lower = stats.binom.cdf(k, n, 0.5)
    upper = stats.binom.sf(k - 1, n, 0.5)
    p = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    return np.where(n > 0, p, np.nan)


# --- Straight-lining ----------------------------------------------------------------------------------


def longest_runs(*, group: IntArray, values: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """The longest run of the same value per group: (groups, run lengths, the run's value).

    `group` and `values` must be in time order within each group (groups may interleave: a stable
    sort by group keeps the time order). Of equally long runs, the earliest is reported."""
    runs = _runs(group, values)
    if runs is None:
        return _empty_runs()
    starts, lengths, run_group, run_value = runs
    # Per group, the longest run, earliest first: sort runs by (group, -length, start).
    best = np.lexsort((starts, -lengths, run_group))
    first = np.r_[True, run_group[best][1:] != run_group[best][:-1]]
    chosen = best[first]
    return run_group[chosen], lengths[chosen], run_value[chosen]


def trailing_runs(*, group: IntArray, values: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """The run each group's latest values form: (groups, run lengths, the run's value).

    What an incremental refresh needs to extend `longest_runs` with new votes; same ordering rules."""
    runs = _runs(group, values)
    if runs is None:
        return _empty_runs()
    _, lengths, run_group, run_value = runs
    last = np.r_[run_group[1:] != run_group[:-1], True]
    return run_group[last], lengths[last], run_value[last]


def _runs(group: IntArray, values: IntArray) -> tuple[IntArray, IntArray, IntArray, IntArray] | None:
    """Every run of equal values within each group, groups in order, runs in time order:
    (start positions, lengths, groups, values); None when there are no values."""
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    if group.size == 0:
        return None
    order = np.argsort(group, kind="stable")
    g, v = group[order], values[order]
    starts = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (v[1:] != v[:-1])])
    lengths = np.diff(np.r_[starts, g.size])
    return starts, lengths, g[starts], v[starts]


def _empty_runs() -> tuple[IntArray, IntArray, IntArray]:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty


def runs_extend(
    *, longest: int, longest_value: int, trailing: int, trailing_value: int, values: list[int]
) -> tuple[int, int, int, int]:
    """Extend one group's runs with its next values, in order: (longest, its value, trailing, its value).

    Of equally long runs the earliest stays the longest, as in `longest_runs`."""
    for value in values:
        if value == trailing_value:
            trailing += 1
        else:
            trailing, trailing_value = 1, value
        if trailing > longest:
            longest, longest_value = trailing, trailing_value
    return longest, longest_value, trailing, trailing_value


# --- Agreement ----------------------------------------------------------------------------------------


def vote_agreement(*, unit: IntArray, label: IntArray) -> tuple[IntArray, IntArray]:
    """For each vote, (others, same): how many other votes its unit (item pair) has, and how many of
    them have the same label. The share `same / others` is defined where `others > 0`."""
    unit = np.asarray(unit, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    if unit.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    _, unit_index, unit_counts = np.unique(unit, return_inverse=True, return_counts=True)
    _, cell_index, cell_counts = np.unique(
        _cell_keys(unit_index.ravel(), label), return_inverse=True, return_counts=True
    )
    return unit_counts[unit_index.ravel()] - 1, cell_counts[cell_index.ravel()] - 1


def _cell_keys(unit_index: IntArray, label: IntArray) -> IntArray:
    """One integer per (unit, label) cell: a 1-D sort is many times faster than np.unique(axis=0)."""
    shifted = label - label.min()
    return unit_index * (int(shifted.max()) + 1) + shifted


def group_agreement(*, group: IntArray, unit: IntArray, label: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
    """Per group (rater): (groups, votes with company, mean share of the others who agreed).

    The mean is NaN for a group none of whose votes had company. Each vote counts once, whatever
    the overlap, so a rater is not judged more by the pairs that happened to get more votes."""
    others, same = vote_agreement(unit=unit, label=label)
    groups, index = np.unique(np.asarray(group, dtype=np.int64), return_inverse=True)
    has_company = others > 0
    share = np.divide(same, others, out=np.zeros(others.size, dtype=np.float64), where=has_company)
    counted = np.bincount(index, weights=has_company, minlength=groups.size).astype(np.int64)
    total = np.bincount(index, weights=share, minlength=groups.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counted > 0, total / counted, np.nan)
    return groups, counted, mean


def krippendorff_alpha_nominal(*, unit: IntArray, label: IntArray) -> float | None:
    """Krippendorff's alpha for nominal data from (unit, label) pairs, one per rating.

    The coincidence-matrix formula, vectorised: only units with two or more ratings are pairable;
    alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2). None when it is undefined (nothing
    pairable, or every pairable rating has the same label, so no disagreement is expected by chance).
    Checked against crowd-kit's `alpha_krippendorff` (nltk) in the tests; this is much faster."""
    return alpha_from_parts(alpha_parts(unit=unit, label=label))


def alpha_parts(*, unit: IntArray, label: IntArray) -> FloatArray:
    """Alpha's sums, additive over units: [sum_c o_cc, n_0, n_1, ...] (n_c: pairable ratings per label).

    An incremental refresh keeps them per study and replaces the contribution of the units that got
    new votes, so it never reads the other units again."""
    parts = np.zeros(1 + len(LABEL_NAMES))
    unit = np.asarray(unit, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    keep = label >= 0
    unit, label = unit[keep], label[keep]
    if unit.size == 0:
        return parts
    units, unit_index = np.unique(unit, return_inverse=True)
    unit_index = unit_index.ravel()
    _, cell_first, cell_counts = np.unique(_cell_keys(unit_index, label), return_index=True, return_counts=True)
    cell_unit, cell_label = unit_index[cell_first], label[cell_first]
    m = np.bincount(cell_unit, weights=cell_counts, minlength=units.size)[cell_unit]
    pairable = m >= 2
    n_uc, m_u, c = cell_counts[pairable].astype(np.float64), m[pairable], cell_label[pairable]
    parts[0] = float(np.sum(n_uc * (n_uc - 1) / (m_u - 1)))
    parts[1:] = np.bincount(c, weights=n_uc, minlength=len(LABEL_NAMES))
    return parts


def alpha_from_parts(parts: FloatArray) -> float | None:
    observed_same, n_c = float(parts[0]), np.asarray(parts[1:], dtype=np.float64)
    n = float(n_c.sum())
    expected = n * n - float(np.sum(n_c * n_c))
    if n == 0 or expected <= 0:
        return None
    return 1.0 - (n - 1) * (n - observed_same) / expected


# --- Speed --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    typical: float | None  # seconds: exp(median of log-seconds), the study's typical time per vote
    log_sd: float | None  # a robust SD of log-seconds: 1.4826 x their median absolute deviation
    threshold: float | None  # seconds; None when nothing can be "exceptionally fast"


# For normally distributed values, 1.4826 x MAD estimates the standard deviation.
MAD_TO_SD = 1.4826


def speed_threshold(*, seconds: FloatArray, sd: float, min_votes: int = 10) -> Speed:
    """The study's typical time per vote and the "exceptionally fast" threshold: `sd` standard
    deviations below it, Prolific's "more than 3 SD below the mean", measured where it means
    something:

    - on log-seconds, because task times are right-skewed (roughly log-normal): on plain seconds
      mean - 3 SD is usually below zero, so the rule could never fire;
    - with robust estimates (median, 1.4826 x MAD), because with the plain SD the fast raters
      themselves widen it until nobody is "exceptionally fast" (seen in the simulated crowds:
      12% of votes at 1-4 s pushed mean - 3 SD below zero).

    A vote is exceptionally fast when it took under exp(median - sd x robust SD) of log-seconds.
    Rounded to 0.01 s, so it is stable and explainable ("your vote took 0.8 s, the threshold is
    12.70 s"). Too few votes: no threshold."""
    seconds = np.asarray(seconds, dtype=np.float64)
    if seconds.size < max(2, min_votes):
        typical = float(np.exp(np.median(np.log(np.maximum(seconds, 0.001))))) if seconds.size else None
        return Speed(typical=typical, log_sd=None, threshold=None)
    logs = np.log(np.maximum(seconds, 0.001))  # a 0 ms vote (clock rounding) must not be -inf
    center = float(np.median(logs))
    spread = MAD_TO_SD * float(np.median(np.abs(logs - center)))
    threshold = round(float(np.exp(center - sd * spread)), 2)
    return Speed(typical=float(np.exp(center)), log_sd=spread, threshold=threshold if threshold > 0 else None)


def group_medians(*, group: IntArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
    """Median of `values` per group, vectorised: (groups, medians)."""
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if group.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    groups, starts, counts = np.unique(g, return_index=True, return_counts=True)
    low = starts + (counts - 1) // 2
    high = starts + counts // 2
    return groups, (v[low] + v[high]) / 2.0


# --- Model-based reliability (crowd-kit) --------------------------------------------------------------


def dawid_skene_skills(
    *, task: IntArray, worker: IntArray, label: IntArray, n_iter: int = 30, min_votes: int = 50
) -> dict[int, float]:
    """Dawid-Skene (crowd-kit) on (task = item pair, worker = rater, label): skill per worker.

    crowd-kit's DawidSkene has no `skills_`; a worker's skill here is the probability that their
    label is the true one: the diagonal of their confusion matrix weighted by the class priors,
    sum_k prior_k * P(says k | truth k). Only tasks with two or more labels inform the model; too
    few of them gives {}. `n_iter` is capped because crowd-kit's EM runs on pandas (about 0.13 s per
    iteration per 250,000 votes); it also stops early at its tolerance. Never raises: a failure is
    logged and gives {} (the refresh goes on without the estimate)."""
    try:
        frame = _overlapping_frame(task=task, worker=worker, label=label)
        if len(frame) < min_votes or frame["worker"].nunique() < 2 or frame["label"].nunique() < 2:
            return {}
        from crowdkit.aggregation import DawidSkene

        model = DawidSkene(n_iter=n_iter).fit(frame)
        priors = model.priors_
        errors = model.errors_  # index (worker, said), columns truth: P(said | truth)
        skill = sum(errors[truth].xs(truth, level="label").fillna(0.0) * float(priors[truth]) for truth in priors.index)
        return {int(w): float(s) for w, s in skill.items()}
    except Exception:
        log.exception("Dawid-Skene failed; leaving the skills empty")
        return {}


def _overlapping_frame(*, task: IntArray, worker: IntArray, label: IntArray) -> Any:
    import pandas as pd

    task = np.asarray(task, dtype=np.int64)
    _, index, counts = np.unique(task, return_inverse=True, return_counts=True)
    keep = counts[index.ravel()] >= 2
    return pd.DataFrame(
        {"task": task[keep], "worker": np.asarray(worker, dtype=np.int64)[keep], "label": np.asarray(label)[keep]}
    )


def noisy_bt_skills(
    *, worker: IntArray, left: IntArray, right: IntArray, winner: IntArray, n_iter: int = 100, min_votes: int = 50
) -> dict[int, float]:
    """Noisy Bradley-Terry (crowd-kit) on the pairwise votes: skill per worker (its `skills_`).

    A worker's skill is the probability that their answer follows the systems' strengths rather than
    their own bias towards a side (the model's `biases_`, not returned here: position bias has its
    own signal). Rows whose winner is neither side (ties, both bad) must be left out by the caller.
    crowd-kit's gradient loops over the votes in Python (minutes at 1M votes) and does not match its
    own likelihood; `_VectorisedNoisyBT` keeps crowd-kit's model, likelihood and optimiser and
    replaces only the gradient with an exact vectorised one (checked numerically in the tests).
    Never raises: a failure is logged and gives {}."""
    try:
        import pandas as pd

        winner = np.asarray(winner, dtype=np.int64)
        if winner.size < min_votes or np.unique(worker).size < 2:
            return {}
        frame = pd.DataFrame({"worker": worker, "left": left, "right": right, "label": winner})
        model = _VectorisedNoisyBT(n_iter=n_iter).fit(frame)
        return {int(w): float(s) for w, s in model.skills_.items()}
    except Exception:
        log.exception("Noisy Bradley-Terry failed; leaving the skills empty")
        return {}


def _noisy_bt_class() -> type:
    from crowdkit.aggregation import NoisyBradleyTerry

    class VectorisedNoisyBT(NoisyBradleyTerry):  # type: ignore[misc]
        @staticmethod
        def _compute_gradient(
            x: FloatArray,
            np_data: IntArray,
            np_workers: IntArray,
            labels: int,
            workers: int,
            regularization_ratio: float,
        ) -> FloatArray:
            return noisy_bt_gradient(x, np_data, np_workers, labels, workers, regularization_ratio)

    return VectorisedNoisyBT


def noisy_bt_gradient(
    x: FloatArray, np_data: IntArray, np_workers: IntArray, labels: int, workers: int, regularization_ratio: float
) -> FloatArray:
    """The exact gradient of crowd-kit's `NoisyBradleyTerry._compute_log_likelihood` (which it minimises).

    Per vote the likelihood is L = g a + (1 - g) b with g = expit(gamma_w), a = expit(y (s_i - s_j)),
    b = expit(y q_w), y = +1 when the left item won; the regulariser is r * sum(log expit(s0 - s) +
    log expit(s - s0))."""
    left, right, won = np_data[:, 0], np_data[:, 1], np_data[:, 2]
    y = np.where(left == won, 1.0, -1.0)
    q_index = 1 + labels + np_workers
    gamma_index = 1 + labels + workers + np_workers
    g = expit(x[gamma_index])
    a = expit(y * (x[left] - x[right]))
    b = expit(y * x[q_index])
    likelihood = g * a + (1 - g) * b
    d_strength = g * a * (1 - a) * y / likelihood
    size = x.size
    gradient = np.bincount(left, weights=d_strength, minlength=size) - np.bincount(
        right, weights=d_strength, minlength=size
    )
    gradient += np.bincount(q_index, weights=(1 - g) * b * (1 - b) * y / likelihood, minlength=size)
    gradient += np.bincount(gamma_index, weights=g * (1 - g) * (a - b) / likelihood, minlength=size)
    # d/ds [log expit(s0 - s) + log expit(s - s0)] = -tanh((s - s0) / 2)
    pull = np.tanh((x[1 : labels + 1] - x[0]) / 2.0)
    regulariser = np.zeros_like(x)
    regulariser[1 : labels + 1] = -pull
    regulariser[0] = pull.sum()
    return -gradient + regularization_ratio * regulariser


class _LazyNoisyBT:
    """Builds the crowd-kit subclass on first use, so importing this module does not import crowd-kit."""

    _cls: type | None = None

    def __call__(self, **kwargs: Any) -> Any:
        if _LazyNoisyBT._cls is None:
            _LazyNoisyBT._cls = _noisy_bt_class()
        return _LazyNoisyBT._cls(**kwargs)


_VectorisedNoisyBT = _LazyNoisyBT()
