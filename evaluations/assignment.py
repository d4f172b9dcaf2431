"""The rater's side of a study: leasing tasks, voting, skipping, flagging.

Concurrency is the database's job:
- a rater holds at most one open lease (a partial unique constraint), so asking
  twice returns the same task;
- item pairs are locked with SELECT ... FOR UPDATE SKIP LOCKED while their open
  leases are counted, so two raters never take the last slot of one item pair;
- a lease that lapses stops counting at `expires_at` (no job has to run first);
  `leases_expire` only marks such tasks for the record;
- counters move with F() inside the vote's transaction, in one fixed order
  (item pair, pair totals, systems by id, study) so concurrent votes cannot deadlock.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.quality.models import RaterStudyPause
from crowdplatform.raters.eligibility import rater_is_eligible
from crowdplatform.raters.models import RaterProfile
from evaluations import sampling
from evaluations.models import (
    Choice,
    ContentFlag,
    FlagReason,
    ItemPair,
    PairStat,
    SkipReason,
    Study,
    StudyStatus,
    System,
    Task,
    TaskStatus,
    Vote,
)
from evaluations.services import requirements_of
from payments.earnings import earning_record
from payments.funds import affordable_tasks_by_funds, funds_lock, funds_watch

# Below this many affordable tasks, leases in a study are taken one at a time under the
# study's row lock so the budget is never overrun; above it they run in parallel.
BUDGET_LOCK_MARGIN = 64
CANDIDATES_PER_LOCK = 5
LEASE_ATTEMPTS = 4
MAX_RATIONALE = 5000
MAX_NOTE = 1000

_random = random.SystemRandom()


# --- Leasing ------------------------------------------------------------------------------------


def task_next(
    *, rater: RaterProfile, study: Study | None = None, now: datetime | None = None, rng: random.Random | None = None
) -> Task | None:
    """The rater's open lease (from whichever study), or a new one in a study they may work on
    (only `study`, when given); None when there is nothing for them.

    Under a rush, the slots left may be row-locked by other raters' requests for a moment
    (SKIP LOCKED passes them by); if a study still has a slot this rater could take, the attempt
    is repeated after a short pause instead of wrongly answering "nothing".
    """
    now = now or timezone.now()
    rng = rng or _random
    for attempt in range(LEASE_ATTEMPTS):
        current = _open_lease(rater, now)
        if current is not None:
            return current
        contended = False
        for candidate in _studies_open_to(rater, only=study, at=now):
            try:
                with transaction.atomic():
                    task = _lease_in_study(candidate, rater, now, rng)
            except IntegrityError:
                # The same rater asked twice at once: the other request won; return its lease.
                return _open_lease(rater, now)
            if task is not None:
                return task
            contended = contended or _has_open_slot(candidate, rater, now)
        if not contended:
            return None
        time.sleep(rng.uniform(0.002, 0.01) * (attempt + 1))
    return _open_lease(rater, now)


def _open_lease(rater: RaterProfile, now: datetime) -> Task | None:
    lease = Task.objects.filter(rater=rater, status=TaskStatus.LEASED).first()
    if lease is None:
        return None
    if lease.expires_at > now:
        return lease
    Task.objects.filter(pk=lease.pk, status=TaskStatus.LEASED).update(status=TaskStatus.EXPIRED, finished_at=now)
    return None


def _studies_open_to(rater: RaterProfile, *, only: Study | None, at: datetime) -> list[Study]:
    studies = (
        Study.objects.filter(status=StudyStatus.LIVE)
        # A rater paused on a study by quality review gets no new task there (a lease they already
        # hold stays theirs to finish). A subquery of the same statement: no extra query.
        .exclude(Exists(RaterStudyPause.objects.filter(rater=rater, study=OuterRef("pk"), lifted_at__isnull=True)))
        .order_by("launched_at", "id")
    )
    if only is not None:
        studies = studies.filter(pk=only.pk)
    return [study for study in studies if rater_is_eligible(rater, requirements_of(study), at=at)]


def _has_open_slot(study: Study, rater: RaterProfile, now: datetime) -> bool:
    """Whether some item pair could still take this rater (a plain read, no locks)."""
    if _affordable_tasks(study, now) <= 0:
        return False
    return (
        ItemPair.objects.filter(study=study, is_gold=False, votes__lt=study.votes_per_pair)
        .filter(pair_stat__system_low__retired_at__isnull=True, pair_stat__system_high__retired_at__isnull=True)
        .exclude(_judged_by(rater))
        .annotate(held=Coalesce(Subquery(_open_leases_count(now)), 0))
        .filter(held__lt=study.votes_per_pair - F("votes"))
        .exists()
    )


def _affordable_tasks(study: Study, now: datetime) -> int:
    """How many more tasks both the study's budget and the organization's prepaid funds pay
    for, counting open leases as spent."""
    open_leases = Task.objects.filter(study=study, status=TaskStatus.LEASED, expires_at__gt=now).count()
    by_budget = study.budget_cents // study.pay_per_task_cents - study.votes_count - open_leases
    if by_budget <= 0:
        return by_budget
    return min(by_budget, affordable_tasks_by_funds(study, now))


def _lease_in_study(study: Study, rater: RaterProfile, now: datetime, rng: random.Random) -> Task | None:
    affordable = _affordable_tasks(study, now)
    if affordable < BUDGET_LOCK_MARGIN:
        # Near the end of the budget or the funds, leases are taken one at a time: the study's
        # row serializes its raters, the organization's funds account serializes its studies.
        study = Study.objects.select_for_update().get(pk=study.pk)
        funds_lock(organization_id=study.organization_id, currency=study.currency)
        if study.status != StudyStatus.LIVE or _affordable_tasks(study, now) <= 0:
            if study.status == StudyStatus.LIVE:
                funds_watch(organization_id=study.organization_id)
            return None
    if study.gold_rate and rng.random() < study.gold_rate:
        task = _lease_gold(study, rater, now, rng)
        if task is not None:
            return task
    return _lease_sampled(study, rater, now, rng)


def _lease_sampled(study: Study, rater: RaterProfile, now: datetime, rng: random.Random) -> Task | None:
    """Draw a system pair by the study's policy, then a slot in it; a pair with no slot for
    this rater is dropped and the draw repeats over the rest."""
    open_pairs = {
        stat.pk: stat
        for stat in PairStat.objects.filter(
            study=study, item_pairs_count__gt=0, votes__lt=F("item_pairs_count") * study.votes_per_pair
        )
        # A retired system gets no new tasks (joins in the same statement: no extra query).
        .filter(system_low__retired_at__isnull=True, system_high__retired_at__isnull=True)
    }
    system_votes = (  # only the balanced policy weighs systems' totals
        dict(System.objects.filter(study=study).values_list("pk", "votes_count"))
        if study.sampling == sampling.BALANCED
        else {}
    )
    while open_pairs:
        states = [_state(stat) for stat in open_pairs.values()]
        probabilities = sampling.pair_probabilities(study.sampling, states, system_votes)
        key = sampling.draw(probabilities, rng)
        item_pair = _lock_open_slot(study, open_pairs[key], rater, now)
        if item_pair is not None:
            return _task_create(study, item_pair, rater, now, rng, probability=probabilities[key])
        del open_pairs[key]
    return None


def _state(stat: PairStat) -> sampling.PairState:
    return sampling.PairState(
        key=stat.pk,
        system_low=stat.system_low_id,
        system_high=stat.system_high_id,
        votes=stat.votes,
        low_wins=stat.low_wins,
        high_wins=stat.high_wins,
    )


def _judged_by(rater: RaterProfile) -> Exists:
    return Exists(Task.objects.filter(rater=rater, item_pair=OuterRef("pk")).exclude(status=TaskStatus.EXPIRED))


def _open_leases_count(now: datetime) -> QuerySet[Task]:
    return (
        Task.objects.filter(item_pair=OuterRef("pk"), status=TaskStatus.LEASED, expires_at__gt=now)
        .order_by()
        .values("item_pair")
        .annotate(n=Count("pk"))
        .values("n")
    )


def _lock_open_slot(study: Study, stat: PairStat, rater: RaterProfile, now: datetime) -> ItemPair | None:
    """An item pair of `stat` with a free slot the rater has not judged, row-locked.

    Fullest first, so item pairs reach their overlap (and agreement can be measured)
    before new ones open. Open leases are counted only after the lock is held: that
    statement sees every lease committed by whoever held the lock before.
    """
    candidates = list(
        ItemPair.objects.filter(pair_stat=stat, votes__lt=study.votes_per_pair)
        .exclude(_judged_by(rater))
        # Item pairs already filled by open leases are skipped here so they cannot crowd out the
        # batch; this count may be a statement old, hence the recount below under the lock.
        .annotate(held=Coalesce(Subquery(_open_leases_count(now)), 0))
        .filter(held__lt=study.votes_per_pair - F("votes"))
        # Both keys descending: a backward scan of the (pair_stat, votes, id) index, stopping early.
        .order_by("-votes", "-id")
        # What the rater will be shown comes with the lock, so the task needs no second fetch.
        .select_related("item", "response_low", "response_high")
        .select_for_update(skip_locked=True, of=("self",))[:CANDIDATES_PER_LOCK]
    )
    if not candidates:
        return None
    leased = dict(
        Task.objects.filter(item_pair__in=candidates, status=TaskStatus.LEASED, expires_at__gt=now)
        .values_list("item_pair")
        .annotate(n=Count("pk"))
    )
    for candidate in candidates:
        if candidate.votes + leased.get(candidate.pk, 0) < study.votes_per_pair:
            return candidate
    return None


def _lease_gold(study: Study, rater: RaterProfile, now: datetime, rng: random.Random) -> Task | None:
    """A gold item pair the rater has not seen. Gold has no overlap limit: every rater may get each."""
    unseen = list(
        ItemPair.objects.filter(study=study, is_gold=True).exclude(_judged_by(rater)).values_list("pk", flat=True)
    )
    if not unseen:
        return None
    gold = ItemPair.objects.select_related("item", "response_low", "response_high").get(pk=rng.choice(sorted(unseen)))
    return _task_create(study, gold, rater, now, rng, probability=None)


def _task_create(
    study: Study,
    item_pair: ItemPair,
    rater: RaterProfile,
    now: datetime,
    rng: random.Random,
    *,
    probability: float | None,
) -> Task:
    left, right = item_pair.response_low, item_pair.response_high
    if rng.random() < 0.5:
        left, right = right, left
    return Task.objects.create(
        study=study,
        item_pair=item_pair,
        rater=rater,
        response_a=left,
        response_b=right,
        is_gold=item_pair.is_gold,
        sampling_policy="" if item_pair.is_gold else study.sampling,
        sampling_probability=probability,
        leased_at=now,
        expires_at=now + timedelta(seconds=study.lease_seconds),
    )


def leases_expire(*, now: datetime | None = None) -> int:
    """Mark lapsed leases expired (they already stopped counting when they lapsed)."""
    now = now or timezone.now()
    return Task.objects.filter(status=TaskStatus.LEASED, expires_at__lte=now).update(
        status=TaskStatus.EXPIRED, finished_at=now
    )


# --- Voting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteInput:
    choice: str
    criteria: dict[str, str] = field(default_factory=dict)
    rationale: str = ""


def _task_of(rater: RaterProfile, task_id: object) -> Task:
    """The rater's own task, row-locked; anyone else's is reported missing."""
    task = (
        Task.objects.select_for_update(of=("self",))
        .select_related("study", "item_pair", "response_a", "response_b")
        # A vote reads the responses' labels and systems, never their (large) content.
        .defer(*(f"{side}__{name}" for side in ("response_a", "response_b") for name in ("content", "content_html")))
        .filter(pk=task_id, rater=rater)
        .first()
    )
    if task is None:
        raise Http404("No such task.")
    return task


def _check_open(task: Task, now: datetime) -> None:
    if task.status == TaskStatus.LEASED and task.expires_at > now:
        return
    if task.status == TaskStatus.SKIPPED:
        raise ConflictError("You skipped this task.", code="task_skipped")
    raise ConflictError("The lease on this task has expired; ask for the next task.", code="lease_expired")


def _validated_vote(task: Task, data: VoteInput) -> VoteInput:
    errors: dict[str, list[str]] = {}
    if data.choice not in Choice.values:
        errors["choice"] = [f"Choose one of {', '.join(Choice.values)}."]
    criteria = data.criteria or {}
    names = set(task.study.criterion_names)
    if not isinstance(criteria, dict):
        errors["criteria"] = ["Give criteria as an object: criterion name -> choice."]
    elif set(criteria) - names:
        errors["criteria"] = [f"Unknown criterion: {', '.join(sorted(set(criteria) - names))}."]
    elif any(value not in Choice.values for value in criteria.values()):
        errors["criteria"] = [f"Each criterion's choice is one of {', '.join(Choice.values)}."]
    if len(data.rationale) > MAX_RATIONALE:
        errors["rationale"] = [f"Keep the rationale to {MAX_RATIONALE} characters."]
    if errors:
        raise ApplicationError("The vote is not valid.", fields=errors)
    return VoteInput(choice=data.choice, criteria=dict(criteria), rationale=data.rationale.strip())


def _same_vote(vote: Vote, data: VoteInput) -> bool:
    return vote.choice == data.choice and vote.criteria == data.criteria and vote.rationale == data.rationale


@transaction.atomic
def vote_submit(
    *, task_id: object, rater: RaterProfile, data: VoteInput, now: datetime | None = None
) -> tuple[Vote, bool]:
    """Record the rater's vote on their task: (vote, created).

    Sending the same vote again returns the first one (created False); a different vote on
    a task already voted, or any vote after the lease lapsed, is refused with 409; a task
    that is not the rater's is 404.
    """
    now = now or timezone.now()
    task = _task_of(rater, task_id)
    data = _validated_vote(task, data)
    if task.status == TaskStatus.SUBMITTED:
        vote = task.vote
        if _same_vote(vote, data):
            return vote, False
        raise ConflictError("You already voted on this task.", code="already_voted")
    _check_open(task, now)
    vote = _vote_create(task, data, now)
    vote.rater = rater  # already loaded: paying the vote needs the rater's user id
    _counters_add(task, vote)
    earning_record(vote=vote)
    return vote, True


def _vote_create(task: Task, data: VoteInput, now: datetime) -> Vote:
    task.status = TaskStatus.SUBMITTED
    task.finished_at = now
    task.save(update_fields=["status", "finished_at"])
    return Vote.objects.create(
        task=task,
        study=task.study,
        item_id=task.item_pair.item_id,
        rater_id=task.rater_id,
        system_a_id=task.response_a.system_id,
        system_b_id=task.response_b.system_id,
        choice=data.choice,
        criteria=data.criteria,
        rationale=data.rationale,
        is_gold=task.is_gold,
        swapped=task.response_a_id > task.response_b_id,
        gold_correct=_gold_correct(task, data.choice) if task.is_gold else None,
        duration_ms=max(0, int((now - task.leased_at).total_seconds() * 1000)),
        created_at=now,
    )


def _gold_correct(task: Task, choice: str) -> bool:
    answer = task.item_pair.item.gold_answer
    if answer in (Choice.TIE, Choice.BOTH_BAD):
        return choice == answer
    better = task.response_a if choice == Choice.A else task.response_b if choice == Choice.B else None
    return better is not None and better.label == answer


def _counters_add(task: Task, vote: Vote) -> None:
    ItemPair.objects.filter(pk=task.item_pair_id).update(votes=F("votes") + 1)
    if not task.is_gold:
        stat_id = task.item_pair.pair_stat_id
        winner = {Choice.A: vote.system_a_id, Choice.B: vote.system_b_id}.get(vote.choice)
        low = min(vote.system_a_id, vote.system_b_id)  # type: ignore[type-var]
        wins = (
            {}
            if winner is None
            else {"low_wins" if winner == low else "high_wins": F("low_wins" if winner == low else "high_wins") + 1}
        )
        PairStat.objects.filter(pk=stat_id).update(votes=F("votes") + 1, **wins)
        # One statement for both systems: PostgreSQL walks `id = ANY(...)` in ascending order, so the
        # rows lock in the same order in every vote (no deadlock between concurrent votes).
        System.objects.filter(pk__in=(vote.system_a_id, vote.system_b_id)).update(votes_count=F("votes_count") + 1)
    Study.objects.filter(pk=task.study_id).update(votes_count=F("votes_count") + 1)


# --- Skipping and flagging ----------------------------------------------------------------------


@transaction.atomic
def task_skip(
    *, task_id: object, rater: RaterProfile, reason: str, note: str = "", now: datetime | None = None
) -> Task:
    """Give the task back with a reason. Skips are not held against the rater; the item pair
    returns to the pool for others (never to this rater again)."""
    now = now or timezone.now()
    task = _task_of(rater, task_id)
    if reason not in SkipReason.values:
        raise ApplicationError("Say why you skip.", fields={"reason": [f"One of {', '.join(SkipReason.values)}."]})
    if len(note) > 500:
        raise ApplicationError("The note is too long.", fields={"note": ["Up to 500 characters."]})
    if task.status == TaskStatus.SKIPPED:
        return task
    if task.status == TaskStatus.SUBMITTED:
        raise ConflictError("You already voted on this task.", code="already_voted")
    _check_open(task, now)
    task.status = TaskStatus.SKIPPED
    task.skip_reason = reason
    task.skip_note = note.strip()
    task.finished_at = now
    task.save(update_fields=["status", "skip_reason", "skip_note", "finished_at"])
    return task


@transaction.atomic
def task_flag(*, task_id: object, rater: RaterProfile, reason: str, note: str = "") -> tuple[ContentFlag, bool]:
    """Report a task's content (harmful, personal data, reveals the model...). Once per reason."""
    task = _task_of(rater, task_id)
    if reason not in FlagReason.values:
        raise ApplicationError("Choose what is wrong.", fields={"reason": [f"One of {', '.join(FlagReason.values)}."]})
    if len(note) > MAX_NOTE:
        raise ApplicationError("The note is too long.", fields={"note": [f"Up to {MAX_NOTE} characters."]})
    return ContentFlag.objects.get_or_create(
        task=task,
        reason=reason,
        defaults={"study_id": task.study_id, "item_id": task.item_pair.item_id, "rater": rater, "note": note.strip()},
    )
