"""Ratings at the arena's scale: 2,800,000 battles among 238 systems, 1,000 bootstrap rounds.

The issue's figure: aggregation + full Bradley-Terry fit + 1,000-round bootstrap in under 10 s on
the 2-core machine, measured side by side, in the same run, against a per-battle resampling
bootstrap (each round resamples the battle table with replacement, as FastChat's older
`get_bootstrap_result` did with `battles.sample(frac=1.0, replace=True)`, then aggregates and fits
with the same fitter, `bt_fit`).

Battles are simulated with a realistic structure: strengths ~ N(0, 1) logits (a spread of a few
hundred rating points, as on the arena), popularity ~ lognormal (unequal numbers of battles per
system), a few thousand distinct pairs sampled by popularity and closeness in strength (not every
pair meets) plus a chain that keeps everything connected, about 9% ties (likelier between close
systems), sides swapped at random.

Both bootstraps resample the same distribution (a multinomial draw of aggregated (pair, outcome)
counts is exactly the aggregate of a with-replacement resample of battles), so their intervals
must agree up to Monte Carlo noise; the run checks it. The baseline runs `--baseline-rounds` rounds
(default: all 1,000 when that takes a few minutes); when fewer, its 1,000-round time is extrapolated
from the per-round time and labelled so.

The machine is shared: the run records the load average and how much of the machine other
processes used while each part ran (from /proc/stat), next to wall and CPU times.

    .venv/bin/python benchmarks/ratings_bootstrap.py [--battles 2800000] [--systems 238] [--pairs 4000]
        [--rounds 1000] [--baseline-rounds 1000] [--seed 0] [--file-roundtrip]

`--file-roundtrip` also writes the battles as a JSONL file and times `compute_ratings`' path
(`read_battles` + `ratings_compute`) on it. Prints a JSON summary and writes it to
benchmarks/results/ratings_bootstrap-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import REPO, summary_report  # benchmarks/benchlib.py (on sys.path for scripts)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evaluations import ratings  # after the path set-up (no Django needed)

TARGET_SECONDS = 10.0
TIE_RATE = 0.12  # ties between evenly matched systems; about 9% of all battles
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def simulate(*, battles: int, systems: int, pairs: int, seed: int) -> dict[str, Any]:
    """Battles as arrays (model_a, model_b: system indices; outcome: 1, 0 or 0.5), in time order."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, systems)
    popularity = rng.lognormal(0.0, 1.0, systems)
    first, second = np.triu_indices(systems, 1)
    closeness = np.exp(-np.abs(strength[first] - strength[second]))
    # `pairs` distinct pairs drawn in proportion to popularity × closeness (Gumbel top-k), plus a
    # chain in a random "release order" so that every system is compared with the others.
    keys = np.log(popularity[first] * popularity[second] * closeness) + rng.gumbel(size=len(first))
    chosen = np.argsort(-keys)[:pairs]
    release = rng.permutation(systems)
    pair_a = np.concatenate([first[chosen], np.minimum(release[:-1], release[1:])])
    pair_b = np.concatenate([second[chosen], np.maximum(release[:-1], release[1:])])
    unique = np.unique(pair_a * systems + pair_b)
    pair_a, pair_b = unique // systems, unique % systems
    share = popularity[pair_a] * popularity[pair_b] * rng.lognormal(0.0, 1.0, len(pair_a))
    per_pair = 1 + rng.multinomial(battles - len(pair_a), share / share.sum())  # every drawn pair meets
    which = rng.permutation(np.repeat(np.arange(len(pair_a)), per_pair))
    model_a, model_b = pair_a[which], pair_b[which]
    swap = rng.random(battles) < 0.5
    model_a, model_b = np.where(swap, model_b, model_a), np.where(swap, model_a, model_b)
    # Ties are likelier between close systems (up to TIE_RATE), and a's expected score (ties as half)
    # is exactly the BT probability, so the fit's target is the simulated strengths themselves.
    p_a = 1.0 / (1.0 + np.exp(strength[model_b] - strength[model_a]))
    p_tie = TIE_RATE * 4.0 * p_a * (1.0 - p_a)
    u = rng.random(battles)
    outcome = np.where(u < p_tie, 0.5, np.where(u < p_tie + (p_a - p_tie / 2.0), 1.0, 0.0))
    return {
        "names": [f"model-{index:03d}" for index in range(systems)],
        "strength": strength,
        "model_a": model_a.astype(np.int32),
        "model_b": model_b.astype(np.int32),
        "outcome": outcome,
        "pairs_met": int(np.count_nonzero(per_pair)),
    }


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores)."""
    values = [int(v) / CLK_TCK for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


class Timer:
    """Wall and CPU time of a block, and the share of the machine other processes used meanwhile."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu, self.busy = time.perf_counter(), time.process_time(), machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        others = max(machine_busy() - self.busy - self.cpu, 0.0)
        cores = os.cpu_count() or 1
        self.other_load = others / (self.wall * cores) if self.wall > 0 else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "wall_seconds": round(self.wall, 3),
            "cpu_seconds": round(self.cpu, 3),
            "other_processes_share_of_machine": round(self.other_load, 3),
        }


def ours(data: dict[str, Any], rounds: int, seed: int) -> tuple[dict[str, Any], ratings.RatingResult]:
    """Aggregate the battles, fit, bootstrap 1,000 rounds: what the leaderboard and compute_ratings do."""
    with Timer() as total:
        with Timer() as aggregate:
            counts = ratings.pair_counts(
                systems=data["names"], model_a=data["model_a"], model_b=data["model_b"], outcome=data["outcome"]
            )
        result = ratings.ratings_compute(counts=counts, bootstrap=rounds, seed=seed)
    canonical = ratings.canonical_counts(counts)
    cells = int(np.count_nonzero(np.stack([canonical.wins_a, canonical.wins_b, canonical.ties])))
    chunk = ratings._rounds_per_chunk(pairs=len(canonical.a), systems=len(canonical.systems), cells=cells)
    return {
        **total.figures(),
        "aggregation_seconds": round(aggregate.wall, 3),
        "rounds": rounds,
        "pairs": len(canonical.a),
        "resampled_cells": cells,
        "rounds_per_chunk": chunk,
        "threads": min(ratings._available_cpus(), -(-rounds // chunk)),
        "met_target": total.wall < TARGET_SECONDS,
    }, result


def per_battle_baseline(data: dict[str, Any], rounds: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Each round: resample the battle table with replacement, aggregate, fit (bt_fit, from scratch)."""
    rng = np.random.default_rng(seed)
    names, model_a, model_b, outcome = data["names"], data["model_a"], data["model_b"], data["outcome"]
    battles = len(outcome)
    samples = np.empty((rounds, len(names)))
    with Timer() as timer:
        for r in range(rounds):
            pick = rng.integers(0, battles, battles)
            counts = ratings.pair_counts(
                systems=names, model_a=model_a[pick], model_b=model_b[pick], outcome=outcome[pick]
            )
            samples[r] = ratings.bt_fit(counts)
            if (r + 1) % max(rounds // 10, 1) == 0:
                log(f"  baseline: {r + 1}/{rounds} rounds, {time.perf_counter() - timer.wall:.0f} s")
    per_round = timer.wall / rounds
    figures = {
        **timer.figures(),
        "rounds": rounds,
        "seconds_per_round": round(per_round, 4),
    }
    if rounds < 1000:
        figures["extrapolated_1000_rounds_wall_seconds"] = round(per_round * 1000, 1)
    return figures, samples


def intervals_compared(result: ratings.RatingResult, baseline: np.ndarray, names: list[str]) -> dict[str, float]:
    """How close the two bootstraps' 95% intervals are (rating points), system by system."""
    low, high = np.quantile(ratings.to_arena_scale(baseline, names), ratings.INTERVAL, axis=0)
    by_name = {name: index for index, name in enumerate(names)}
    ours_low = np.array([r.ci_low for r in result.ratings])
    ours_high = np.array([r.ci_high for r in result.ratings])
    columns = [by_name[r.system] for r in result.ratings]
    theirs_low, theirs_high = low[columns], high[columns]
    width_ours, width_theirs = ours_high - ours_low, theirs_high - theirs_low
    # Ratings are mean-zero in both fits; the per-battle resample's point is the same full-data fit.
    return {
        "mean_interval_width_ours": round(float(width_ours.mean()), 2),
        "mean_interval_width_per_battle": round(float(width_theirs.mean()), 2),
        "mean_abs_width_difference": round(float(np.abs(width_ours - width_theirs).mean()), 2),
        "mean_abs_relative_width_difference": round(
            float((np.abs(width_ours - width_theirs) / width_theirs).mean()), 4
        ),
        "mean_abs_bound_difference": round(
            float(np.concatenate([np.abs(ours_low - theirs_low), np.abs(ours_high - theirs_high)]).mean()), 2
        ),
        "mean_abs_rank_difference": round(
            float(
                np.abs(
                    ratings.ranks_from_intervals(ours_low, ours_high)
                    - ratings.ranks_from_intervals(theirs_low, theirs_high)
                ).mean()
            ),
            3,
        ),
    }


def file_roundtrip(data: dict[str, Any], rounds: int, seed: int) -> dict[str, Any]:
    """compute_ratings' path on a JSONL file of the same battles: read_battles + ratings_compute."""
    from evaluations.battles_file import read_battles

    winners = np.array(ratings.WINNERS[:3])[np.where(data["outcome"] == 1.0, 0, np.where(data["outcome"] == 0.0, 1, 2))]
    names = data["names"]
    with tempfile.TemporaryDirectory(prefix="ratings-bench-") as folder:
        path = Path(folder) / "battles.jsonl"
        with path.open("w") as out:
            for index, (a, b, winner) in enumerate(
                zip(data["model_a"].tolist(), data["model_b"].tolist(), winners.tolist(), strict=True)
            ):
                out.write(
                    json.dumps({"model_a": names[a], "model_b": names[b], "winner": winner, "tstamp": 1.7e9 + index})
                    + "\n"
                )
        size = path.stat().st_size
        with Timer() as reading:
            battles = read_battles(path)
        with Timer() as rating:
            ratings.ratings_compute(counts=battles.counts(), bootstrap=rounds, seed=seed)
    return {
        "file_megabytes": round(size / 1e6, 1),
        "read_battles": reading.figures(),
        "ratings_compute": rating.figures(),
        "total_wall_seconds": round(reading.wall + rating.wall, 2),
    }


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpus_usable": ratings._available_cpus(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = sorted(
            {f"{lib['internal_api']} {lib['version']} ({lib['num_threads']} threads)" for lib in threadpool_info()}
        )
    except ImportError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=2_800_000)
    parser.add_argument("--systems", type=int, default=238)
    parser.add_argument("--pairs", type=int, default=4000, help="distinct pairs drawn (plus a connecting chain)")
    parser.add_argument("--rounds", type=int, default=ratings.DEFAULT_BOOTSTRAP)
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=1000,
        help="per-battle resampling rounds (fewer: the 1,000-round time is extrapolated)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file-roundtrip", action="store_true", help="also time compute_ratings' file path")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    log(f"simulating {args.battles:,} battles among {args.systems} systems")
    data = simulate(battles=args.battles, systems=args.systems, pairs=args.pairs, seed=args.seed)
    log(f"ours: aggregation + fit + {args.rounds} bootstrap rounds")
    fast, result = ours(data, args.rounds, args.seed)
    log(f"ours: {fast['wall_seconds']} s wall, {fast['cpu_seconds']} s CPU")
    log(f"per-battle resampling baseline: {args.baseline_rounds} rounds")
    slow, baseline_samples = per_battle_baseline(data, args.baseline_rounds, args.seed)
    baseline_1000 = slow.get("extrapolated_1000_rounds_wall_seconds", slow["wall_seconds"])
    summary: dict[str, Any] = {
        "benchmark": "ratings_bootstrap",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": [round(v, 2) for v in load_before],
        "setup": vars(args),
        "data": {
            "battles": args.battles,
            "systems": args.systems,
            "pairs_with_battles": data["pairs_met"],
            "tie_share": round(float(np.mean(data["outcome"] == 0.5)), 4),
            "battles_per_system": _spread(np.bincount(np.concatenate([data["model_a"], data["model_b"]]))),
            "rating_spread_points": round(float(np.ptp(data["strength"]) / ratings.ALPHA), 1),
        },
        "ours": fast,
        "per_battle_baseline": slow,
        "speedup_wall_1000_rounds": round(baseline_1000 / fast["wall_seconds"], 1),
        "speedup_wall_basis": "measured" if args.baseline_rounds >= 1000 else "extrapolated from per-round time",
        "intervals_compared": intervals_compared(result, baseline_samples, data["names"]),
        "recovery": _recovery(result, data),
        "target": {"seconds": TARGET_SECONDS, "met": fast["met_target"]},
    }
    if args.file_roundtrip:
        log("file round trip: writing and reading a JSONL file of the battles")
        summary["file_roundtrip"] = file_roundtrip(data, args.rounds, args.seed)
    summary["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    summary_report("ratings_bootstrap", summary, record=not args.no_record)
    return 0


def _spread(values: np.ndarray) -> dict[str, int]:
    return {"min": int(values.min()), "median": int(np.median(values)), "max": int(values.max())}


def _recovery(result: ratings.RatingResult, data: dict[str, Any]) -> dict[str, float]:
    """How well the fit recovers the simulated strengths (a sanity check, not a speed figure).

    Ratings are centred on their mean: a system with a perfect record (rated some 2,000 points up,
    held there by the ridge) shifts every other rating by its share of the mean, which the coverage
    then shows; the default simulation's ties make perfect records rare."""
    by_name = {name: index for index, name in enumerate(data["names"])}
    fitted = np.array([r.rating for r in result.ratings])
    truth = data["strength"][[by_name[r.system] for r in result.ratings]]
    truth = (truth - truth.mean()) / ratings.ALPHA + ratings.INIT_RATING
    inside = np.mean([(r.ci_low <= t <= r.ci_high) for r, t in zip(result.ratings, truth, strict=True)])
    scores = np.zeros(len(data["names"]))
    np.add.at(scores, data["model_a"], data["outcome"])
    np.add.at(scores, data["model_b"], 1.0 - data["outcome"])
    played = np.bincount(np.concatenate([data["model_a"], data["model_b"]]), minlength=len(scores))
    return {
        "correlation": round(float(np.corrcoef(fitted, truth)[0, 1]), 5),
        "true_rating_inside_interval_share": round(float(inside), 4),
        "systems_with_a_perfect_record": int(np.sum((played > 0) & ((scores == 0) | (scores == played)))),
    }


if __name__ == "__main__":
    raise SystemExit(main())
