"""How often the quality rules flag honest raters, and how often they catch bad ones, at volume.

Simulates crowds of known behaviour (tests/quality/crowds.py: accurate, careless-but-honest,
expert, random clicker, always-A, too fast) voting through the real `task_next` / `vote_submit`
on a throwaway database, then runs a full signals refresh and the rules, and counts:

- false positives: honest raters (accurate, careless, expert) with any action proposed or applied;
- detection: bad raters with one;

each with a 95% Wilson interval, per behaviour and per rule, over several independent studies.

    .venv/bin/python benchmarks/quality_false_positives.py [--studies 4] [--honest 60] [--bad 12] [--votes 60]

Prints a JSON summary and writes it to benchmarks/results/quality_false_positives-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from benchlib import django_setup_in_process, summary_report  # benchmarks/benchlib.py (on sys.path for scripts)

django_setup = django_setup_in_process


def wilson(hits: int, total: int) -> list[float] | None:
    from crowdplatform.quality.rules import wilson_interval

    if not total:
        return None
    low, high = wilson_interval(hits, total)
    return [round(float(low), 4), round(float(high), 4)]


def one_study(index: int, args: argparse.Namespace) -> list[tuple[str, set[str]]]:
    """Run one simulated study; (behaviour, rules that flagged the rater) per rater."""
    from crowdplatform.accounts.models import AccountType, Organization
    from crowdplatform.quality.models import ActionStatus, QualityAction
    from crowdplatform.quality.refresh import signals_refresh
    from crowdplatform.quality.rules import rules_evaluate
    from crowdplatform.raters.models import ApplicationStatus, RaterLanguage, RaterProfile
    from tests.factories import UserFactory
    from tests.quality import crowds

    owner = UserFactory(account_type=AccountType.CLIENT)
    organization = Organization.objects.create(name=f"FP {index}", slug=f"fp-{index}")
    organization.memberships.create(user=owner, role="owner")
    behaviours = _mix(args.honest, args.bad)
    raters = []
    for behaviour in behaviours:
        user = UserFactory(account_type=AccountType.RATER)
        profile = RaterProfile.objects.create(user=user, status=ApplicationStatus.APPROVED, country="DE")
        RaterLanguage.objects.create(profile=profile, language="en", proficiency="fluent")
        raters.append(crowds.SimulatedRater(profile, behaviour))
    items = max(60, len(raters) * args.votes // 12)
    study, traps = crowds.study_with_items(
        organization=organization, owner=owner, items=items, gold=max(25, args.votes // 2), seed=1000 + index
    )
    crowds.crowd_run(study=study, traps=traps, raters=raters, votes_each=args.votes, seed=2000 + index)
    signals_refresh(study=study, full=True)
    rules_evaluate()
    flagged: dict[int, set[str]] = defaultdict(set)
    for rater_id, rule in QualityAction.objects.filter(
        study=study, status__in=[ActionStatus.PROPOSED, ActionStatus.APPLIED]
    ).values_list("rater_id", "rule"):
        flagged[rater_id].add(rule)
    return [(rater.behaviour, flagged.get(rater.profile.pk, set())) for rater in raters]


def _mix(honest: int, bad: int) -> list[str]:
    from tests.quality import crowds

    honest_kinds = [crowds.ACCURATE, crowds.CARELESS, crowds.EXPERT]
    weights = [0.55, 0.4, 0.05]
    mix = [kind for kind, share in zip(honest_kinds, weights, strict=True) for _ in range(round(honest * share))]
    bad_kinds = [crowds.RANDOM, crowds.ALWAYS_A, crowds.TOO_FAST]
    mix += [bad_kinds[n % 3] for n in range(bad)]
    return mix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--honest", type=int, default=60)
    parser.add_argument("--bad", type=int, default=12)
    parser.add_argument("--votes", type=int, default=60, help="votes per rater")
    args = parser.parse_args(argv)
    django_setup()

    from django.db import connection

    from tests.quality import crowds

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    started = time.perf_counter()
    try:
        outcomes: list[tuple[str, set[str]]] = []
        for index in range(args.studies):
            outcomes += one_study(index, args)
            print(f"study {index + 1}/{args.studies} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        from evaluations.models import Vote

        votes = Vote.objects.count()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    honest = [rules for behaviour, rules in outcomes if behaviour in crowds.HONEST]
    bad = [rules for behaviour, rules in outcomes if behaviour in crowds.BAD]
    honest_flagged = sum(1 for rules in honest if rules)
    bad_caught = sum(1 for rules in bad if rules)
    per_behaviour = {}
    for behaviour in sorted({b for b, _ in outcomes}):
        group = [rules for b, rules in outcomes if b == behaviour]
        per_behaviour[behaviour] = {
            "raters": len(group),
            "flagged": sum(1 for rules in group if rules),
            "by_rule": dict(Counter(rule for rules in group for rule in rules)),
        }
    summary: dict[str, Any] = {
        "benchmark": "quality_false_positives",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": connection.vendor,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "setup": vars(args),
        "votes": votes,
        "seconds": round(time.perf_counter() - started, 1),
        "false_positive_rate": {
            "honest_raters": len(honest),
            "flagged": honest_flagged,
            "rate": round(honest_flagged / len(honest), 4) if honest else None,
            "wilson_95": wilson(honest_flagged, len(honest)),
        },
        "detection_rate": {
            "bad_raters": len(bad),
            "caught": bad_caught,
            "rate": round(bad_caught / len(bad), 4) if bad else None,
            "wilson_95": wilson(bad_caught, len(bad)),
        },
        "per_behaviour": per_behaviour,
    }
    summary_report("quality_false_positives", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
