"""Simulated crowds of known behaviour, voting through the real domain functions.

A study of three systems with hidden strengths; some item pairs are *traps*: the worse response
looks better at a glance, and careless raters fall for it. Behaviours:

- accurate: picks the truly better response 90% of the time, ~45 s a task;
- careless: decent, but falls for traps 85% of the time (on trap pairs they are the majority);
- expert: always right, traps included (so disagrees with the careless majority there), ~70 s;
- random clicker: any of the four answers at random;
- always-A: always the left response;
- too fast: 1–4 s a task, picks at random between A and B.

`crowd_run` returns each simulated rater's profile with its behaviour, so tests can check that
the bad ones are caught and the honest ones are not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from crowdplatform.raters.models import RaterProfile
from evaluations import services
from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.models import Choice, Study, Task
from tests.evaluations.conftest import gold_line, item_line, jsonl, study_input
from tests.money import fund

ACCURATE, CARELESS, EXPERT = "accurate", "careless", "expert"
RANDOM, ALWAYS_A, TOO_FAST = "random", "always_a", "too_fast"
HONEST = frozenset({ACCURATE, CARELESS, EXPERT})
BAD = frozenset({RANDOM, ALWAYS_A, TOO_FAST})
SYSTEMS = ("sys-a", "sys-b", "sys-c")
STRENGTH = {"sys-a": 0.8, "sys-b": 0.0, "sys-c": -0.8}


@dataclass(frozen=True)
class SimulatedRater:
    profile: RaterProfile
    behaviour: str


def study_with_items(*, organization: Any, owner: Any, items: int, gold: int, seed: int) -> tuple[Study, set[str]]:
    """A live, funded study; returns it with the prompt ids whose pairs are traps."""
    rng = random.Random(seed)
    study = services.study_create(
        organization=organization,
        actor=owner,
        data=study_input(votes_per_pair=5, gold_rate=0.25, budget_cents=10_000_000, sampling="balanced"),
    )
    for name in SYSTEMS:
        services.system_register(study=study, actor=owner, name=name, provider="Lab")
    lines = [item_line(n, SYSTEMS) for n in range(items)]
    lines += [gold_line(n, rng.choice(["good", "bad"])) for n in range(gold)]
    services.items_upload(study=study, actor=owner, data=jsonl(lines), filename="items.jsonl")
    fund(organization.pk, 10_000_000)
    study = services.study_launch(study=study, actor=owner)
    traps = {f"p{n}" for n in range(items) if rng.random() < 0.3}
    return study, traps


def crowd_run(
    *,
    study: Study,
    traps: set[str],
    raters: list[SimulatedRater],
    votes_each: int,
    seed: int,
) -> None:
    """Each rater works through up to `votes_each` tasks, round-robin, on a simulated clock."""
    rng = random.Random(seed)
    clock = timezone.now() - timedelta(days=2)
    active = list(raters)
    done = {rater.profile.pk: 0 for rater in raters}
    while active:
        for rater in list(active):
            task = task_next(rater=rater.profile, study=study, now=clock, rng=rng)
            if task is None or done[rater.profile.pk] >= votes_each:
                active.remove(rater)
                continue
            finished = clock + timedelta(seconds=_seconds(rater.behaviour, rng))
            choice = _choice(rater.behaviour, task, traps, rng)
            vote_submit(task_id=task.pk, rater=rater.profile, data=VoteInput(choice=choice), now=finished)
            done[rater.profile.pk] += 1
            clock += timedelta(seconds=rng.uniform(1, 5))


def _seconds(behaviour: str, rng: random.Random) -> float:
    if behaviour == TOO_FAST:
        return rng.uniform(1, 4)
    if behaviour == EXPERT:
        return max(15.0, rng.gauss(70, 15))
    if behaviour in (RANDOM, ALWAYS_A):
        return max(8.0, rng.gauss(30, 8))
    return max(12.0, rng.gauss(45, 12))


def _choice(behaviour: str, task: Task, traps: set[str], rng: random.Random) -> str:
    if behaviour == ALWAYS_A:
        return Choice.A
    if behaviour == RANDOM:
        return rng.choice([Choice.A, Choice.B, Choice.TIE, Choice.BOTH_BAD])
    if behaviour == TOO_FAST:
        return rng.choice([Choice.A, Choice.B])
    right = _right_answer(task)
    wrong = Choice.B if right == Choice.A else Choice.A
    if task.is_gold:
        accuracy = {EXPERT: 1.0, ACCURATE: 0.92, CARELESS: 0.8}[behaviour]
        return right if rng.random() < accuracy else wrong
    trap = task.item_pair.item.prompt_id in traps
    if behaviour == EXPERT:
        return right
    if behaviour == CARELESS and trap:
        return wrong if rng.random() < 0.85 else right
    return right if rng.random() < 0.9 else wrong


def _right_answer(task: Task) -> str:
    if task.is_gold:
        answer = task.item_pair.item.gold_answer
        return Choice.A if task.response_a.label == answer else Choice.B
    a, b = task.response_a.system.name, task.response_b.system.name
    return Choice.A if STRENGTH[a] > STRENGTH[b] else Choice.B
