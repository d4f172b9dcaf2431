"""Every change to studies, systems and items: the client's side of an evaluation.

Task assignment and voting (the rater's side) live in `evaluations/assignment.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from crowdplatform.accounts.access import can_manage_organization
from crowdplatform.accounts.models import Organization
from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.raters.eligibility import QualificationRequirement, RaterRequirements
from crowdplatform.raters.models import ExpertiseDomain, QualificationTest
from evaluations import sampling
from evaluations.item_import import ItemRow, detect_format, parse_items
from evaluations.markdown import render_turns
from evaluations.models import Item, ItemPair, PairStat, Response, Study, StudyStatus, System, Task, Vote
from evaluations.response_import import parse_responses
from payments.funds import launch_funding_problem

COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_CRITERIA = 10
MAX_GOLD_RATE = 0.5
MAX_VOTES_PER_PAIR = 20
LEASE_SECONDS_RANGE = (60, 4 * 3600)


# --- Study settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInput:
    name: str
    question: str
    criteria: list[dict[str, str]]
    pay_per_task_cents: int
    description: str = ""
    requirements: dict[str, Any] = field(default_factory=dict)
    votes_per_pair: int = 3
    est_seconds_per_task: int = 60
    sampling: str = sampling.ACTIVE
    gold_rate: float = 0.0
    lease_seconds: int = settings.TASK_LEASE_SECONDS_DEFAULT
    budget_cents: int = 0
    # The study's fair-pay floor; None takes the platform's. A study may only raise it.
    pay_floor_cents_per_hour: int | None = None


def _check_criteria(criteria: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(criteria, list) or not criteria:
        errors["criteria"] = ["Define at least one criterion: a name and what 'better' means for it."]
        return
    if len(criteria) > MAX_CRITERIA:
        errors["criteria"] = [f"At most {MAX_CRITERIA} criteria."]
        return
    names: list[str] = []
    for number, criterion in enumerate(criteria, start=1):
        if (
            not isinstance(criterion, dict)
            or set(criterion) - {"name", "definition"}
            or not all(isinstance(criterion.get(key), str) and criterion[key].strip() for key in ("name", "definition"))
        ):
            errors["criteria"] = [f"Criterion {number} needs a non-empty name and definition, and nothing else."]
            return
        names.append(criterion["name"].strip())
    if len(set(names)) != len(names):
        errors["criteria"] = ["Give each criterion a different name."]
    elif any(len(name) > 60 for name in names):
        errors["criteria"] = ["Keep criterion names to 60 characters."]


def _check_requirements(requirements: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(requirements, dict):
        errors["requirements"] = ["Give requirements as an object."]
        return
    unknown = set(requirements) - {"qualifications", "languages", "domains", "countries"}
    if unknown:
        errors["requirements"] = [f"Unknown requirement(s): {', '.join(sorted(unknown))}."]
        return
    problems: list[str] = []
    qualifications = requirements.get("qualifications", [])
    if not isinstance(qualifications, list) or not all(
        isinstance(q, dict)
        and isinstance(q.get("test_id"), int)
        and isinstance(q.get("min_score", 0), int | float)
        and 0 <= q.get("min_score", 0) <= 1
        for q in qualifications
    ):
        problems.append("qualifications: a list of {test_id, min_score between 0 and 1}.")
    else:
        wanted = {q["test_id"] for q in qualifications}
        known = set(QualificationTest.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        if wanted - known:
            problems.append(f"qualifications: no test with id {', '.join(map(str, sorted(wanted - known)))}.")
    for key, pattern, example in (("languages", LANGUAGE_CODE, "en"), ("countries", COUNTRY_CODE, "DE")):
        values = requirements.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and pattern.match(v) for v in values):
            problems.append(f"{key}: a list of codes such as {example}.")
    domains = requirements.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        problems.append("domains: a list of domain slugs.")
    else:
        known_domains = set(
            ExpertiseDomain.objects.filter(slug__in=domains, is_active=True).values_list("slug", flat=True)
        )
        if set(domains) - known_domains:
            problems.append(f"domains: unknown {', '.join(sorted(set(domains) - known_domains))}.")
    if problems:
        errors["requirements"] = problems


MAX_FLOOR_CENTS_PER_HOUR = 100_000


def implied_hourly_cents(pay_per_task_cents: int, est_seconds_per_task: int) -> int:
    return round(pay_per_task_cents * 3600 / max(est_seconds_per_task, 1))


def _validated(data: StudyInput) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not data.name.strip():
        errors["name"] = ["Name the study."]
    if not data.question.strip():
        errors["question"] = ["Write the question raters answer."]
    _check_criteria(data.criteria, errors)
    _check_requirements(data.requirements, errors)
    if not 1 <= data.votes_per_pair <= MAX_VOTES_PER_PAIR:
        errors["votes_per_pair"] = [f"From 1 to {MAX_VOTES_PER_PAIR} raters per item pair."]
    if data.pay_per_task_cents < 1:
        errors["pay_per_task_cents"] = ["Pay at least 1 cent per task."]
    if not 5 <= data.est_seconds_per_task <= 3600:
        errors["est_seconds_per_task"] = ["Estimate between 5 seconds and an hour per task."]
    elif data.pay_per_task_cents >= 1:
        hourly = implied_hourly_cents(data.pay_per_task_cents, data.est_seconds_per_task)
        floor = _floor_of(data)
        whose = "the platform's" if data.pay_floor_cents_per_hour is None else "the study's"
        if data.pay_per_task_cents * 3600 < floor * data.est_seconds_per_task:  # exact: rounding must not pass
            errors["pay_per_task_cents"] = [
                f"At {data.est_seconds_per_task} s per task this pays ${hourly / 100:.2f}/h; {whose} floor is "
                f"${floor / 100:.2f}/h. Pay at least {-(-floor * data.est_seconds_per_task // 3600)} cents per task."
            ]
    if data.pay_floor_cents_per_hour is not None and not (
        settings.PAY_FLOOR_CENTS_PER_HOUR <= data.pay_floor_cents_per_hour <= MAX_FLOOR_CENTS_PER_HOUR
    ):
        errors["pay_floor_cents_per_hour"] = [
            f"From the platform's floor ({settings.PAY_FLOOR_CENTS_PER_HOUR} cents/h) to {MAX_FLOOR_CENTS_PER_HOUR}."
        ]
    if data.sampling not in sampling.POLICIES:
        errors["sampling"] = [f"Choose one of {', '.join(sampling.POLICIES)}."]
    if not 0 <= data.gold_rate <= MAX_GOLD_RATE:
        errors["gold_rate"] = [f"A share from 0 to {MAX_GOLD_RATE}."]
    if not LEASE_SECONDS_RANGE[0] <= data.lease_seconds <= LEASE_SECONDS_RANGE[1]:
        errors["lease_seconds"] = ["From 60 seconds to 4 hours."]
    if data.budget_cents < 0:
        errors["budget_cents"] = ["A budget cannot be negative."]
    return errors


def _floor_of(data: StudyInput) -> int:
    return max(data.pay_floor_cents_per_hour or 0, settings.PAY_FLOOR_CENTS_PER_HOUR)


def _study_fields(data: StudyInput) -> dict[str, Any]:
    criteria = [{"name": c["name"].strip(), "definition": c["definition"].strip()} for c in data.criteria]
    return {
        "name": data.name.strip(),
        "description": data.description.strip(),
        "question": data.question.strip(),
        "criteria": criteria,
        "requirements": data.requirements,
        "votes_per_pair": data.votes_per_pair,
        "pay_per_task_cents": data.pay_per_task_cents,
        "est_seconds_per_task": data.est_seconds_per_task,
        "sampling": data.sampling,
        "gold_rate": data.gold_rate,
        "lease_seconds": data.lease_seconds,
        "budget_cents": data.budget_cents,
        "pay_floor_cents_per_hour": _floor_of(data),
    }


@transaction.atomic
def study_create(*, organization: Organization, actor: Actor, data: StudyInput) -> Study:
    errors = _validated(data)
    if errors:
        raise ApplicationError("The study is not valid.", fields=errors)
    study = Study.objects.create(organization=organization, created_by=actor_user(actor), **_study_fields(data))
    audit_record(actor=actor, action="study.create", target=study, data={"sampling": study.sampling})
    return study


@transaction.atomic
def study_update(*, study: Study, actor: Actor, data: StudyInput) -> Study:
    """Change a draft study's settings. Once launched, only the budget may change (study_budget_set)."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if data.sampling != study.sampling and Study.objects.filter(pk=study.pk, public_leaderboard__isnull=False).exists():
        # A public leaderboard samples with `active` for every provider alike (integrity policy).
        raise ConflictError(
            "This study runs a public leaderboard: it samples with the active policy, which cannot change.",
            code="leaderboard_sampling_fixed",
        )
    if study.status != StudyStatus.DRAFT:
        raise ConflictError("Only a draft study's settings can change; raise the budget instead.", code="not_draft")
    errors = _validated(data)
    if errors:
        raise ApplicationError("The study is not valid.", fields=errors)
    before = {name: getattr(study, name) for name in _study_fields(data)}
    for name, value in _study_fields(data).items():
        setattr(study, name, value)
    study.save()
    changed = sorted(name for name, value in before.items() if getattr(study, name) != value)
    audit_record(actor=actor, action="study.update", target=study, data={"changed": changed})
    return study


@transaction.atomic
def study_budget_set(*, study: Study, actor: Actor, budget_cents: int) -> Study:
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status in (StudyStatus.COMPLETED, StudyStatus.ARCHIVED):
        raise ConflictError(f"The study is {study.status}; its budget is final.", code="study_closed")
    spent = study.votes_count * study.pay_per_task_cents
    if budget_cents < spent:
        raise ApplicationError(
            f"The budget cannot be below what is already spent ({spent} cents).",
            fields={"budget_cents": [f"At least {spent}."]},
        )
    before = study.budget_cents
    study.budget_cents = budget_cents
    study.save(update_fields=["budget_cents"])
    audit_record(actor=actor, action="study.budget_set", target=study, data={"from": before, "to": budget_cents})
    return study


@transaction.atomic
def study_visibility_set(*, study: Study, actor: Actor, is_public: bool) -> Study:
    """Make the study's leaderboard public (anyone may see it, signed in or not) or private again.

    Only the organization's owners (or staff) decide what the organization publishes. Public means
    system names, ratings, intervals and vote counts; never rater identities, prompts or responses.
    """
    study = Study.objects.select_for_update().select_related("organization").get(pk=study.pk)
    if not can_manage_organization(actor, study.organization):
        raise PermissionDenied("Only an owner of the organization may make its leaderboards public or private.")
    if study.is_public == is_public:
        return study  # nothing changes, so nothing to record
    study.is_public = is_public
    study.save(update_fields=["is_public"])
    audit_record(actor=actor, action="study.visibility_set", target=study, data={"is_public": is_public})
    return study


def requirements_of(study: Study) -> RaterRequirements:
    spec = study.requirements or {}
    return RaterRequirements(
        qualifications=tuple(
            QualificationRequirement(test_id=q["test_id"], min_score=float(q.get("min_score", 0)))
            for q in spec.get("qualifications", [])
        ),
        languages=tuple(spec.get("languages", [])),
        domains=tuple(spec.get("domains", [])),
        countries=tuple(spec.get("countries", [])),
    )


# --- Status transitions -------------------------------------------------------------------------

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "launch": (frozenset({StudyStatus.DRAFT}), StudyStatus.LIVE),
    "pause": (frozenset({StudyStatus.LIVE}), StudyStatus.PAUSED),
    "resume": (frozenset({StudyStatus.PAUSED}), StudyStatus.LIVE),
    "complete": (frozenset({StudyStatus.LIVE, StudyStatus.PAUSED}), StudyStatus.COMPLETED),
    "archive": (frozenset({StudyStatus.COMPLETED, StudyStatus.DRAFT}), StudyStatus.ARCHIVED),
}


def _transition(*, study: Study, actor: Actor, name: str, reason: str = "", paused_reason: str = "") -> Study:
    study = Study.objects.select_for_update().get(pk=study.pk)
    allowed, target = TRANSITIONS[name]
    if study.status not in allowed:
        raise ConflictError(f"A {study.get_status_display().lower()} study cannot {name}.", code="invalid_transition")
    before = study.status
    study.status = target
    now = timezone.now()
    if name == "launch":
        study.launched_at = now
    if name == "complete":
        study.completed_at = now
    study.paused_reason = paused_reason if name == "pause" else ""
    study.save(update_fields=["status", "launched_at", "completed_at", "paused_reason"])
    data = {"from": before, "to": target}
    if reason:
        data["reason"] = reason
    audit_record(actor=actor, action=f"study.{name}", target=study, data=data)
    return study


def launch_problems(study: Study) -> list[str]:
    """What stops a draft study from launching, in words a client can act on."""
    problems = []
    if study.systems.count() < 2:
        problems.append("Register at least two systems.")
    if not ItemPair.objects.filter(study=study, is_gold=False).exists():
        problems.append("Upload items with responses from at least two systems.")
    if study.gold_rate > 0 and not ItemPair.objects.filter(study=study, is_gold=True).exists():
        problems.append("The gold rate is above 0 but no gold items are uploaded.")
    if study.budget_cents < study.pay_per_task_cents:
        problems.append("Set a budget: it does not cover one task.")
    funding = launch_funding_problem(study)
    if funding:
        problems.append(funding)
    return problems


@transaction.atomic
def study_launch(*, study: Study, actor: Actor) -> Study:
    problems = launch_problems(study)
    if problems and study.status == StudyStatus.DRAFT:
        raise ApplicationError("The study cannot launch yet: " + " ".join(problems), code="not_ready")
    return _transition(study=study, actor=actor, name="launch")


@transaction.atomic
def study_pause(*, study: Study, actor: Actor, reason: str = "", paused_reason: str = "") -> Study:
    """Pause a live study. `paused_reason` is set when the platform pauses it ("funds"), so that
    it can resume it by itself once the cause is gone."""
    return _transition(study=study, actor=actor, name="pause", reason=reason, paused_reason=paused_reason)


@transaction.atomic
def study_resume(*, study: Study, actor: Actor) -> Study:
    return _transition(study=study, actor=actor, name="resume")


@transaction.atomic
def study_complete(*, study: Study, actor: Actor) -> Study:
    return _transition(study=study, actor=actor, name="complete")


@transaction.atomic
def study_archive(*, study: Study, actor: Actor) -> Study:
    return _transition(study=study, actor=actor, name="archive")


# --- Systems ------------------------------------------------------------------------------------

CLOSED = frozenset({StudyStatus.COMPLETED, StudyStatus.ARCHIVED})


def _check_open(study: Study) -> None:
    if study.status in CLOSED:
        raise ConflictError(f"The study is {study.status}; it takes no more changes.", code="study_closed")


def _system_fields(name: str, provider: str, notes: str) -> dict[str, str]:
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if not name or len(name) > 100:
        errors["name"] = ["Name the system (up to 100 characters)."]
    elif name in ("tie", "both_bad"):
        errors["name"] = ["'tie' and 'both_bad' are answers, not system names."]
    if len(provider.strip()) > 100:
        errors["provider"] = ["Up to 100 characters."]
    if errors:
        raise ApplicationError("The system is not valid.", fields=errors)
    return {"name": name, "provider": provider.strip(), "notes": notes.strip()}


@transaction.atomic
def system_register(*, study: Study, actor: Actor, name: str, provider: str = "", notes: str = "") -> System:
    study = Study.objects.select_for_update().get(pk=study.pk)
    _check_open(study)
    fields = _system_fields(name, provider, notes)
    if study.systems.filter(name=fields["name"]).exists():
        raise ConflictError(f"A system named {fields['name']!r} is already registered.", code="duplicate")
    system = System.objects.create(study=study, registered_by=actor_user(actor), **fields)
    audit_record(actor=actor, action="system.register", target=system, organization=study.organization, data=fields)
    return system


def _lock_unvoted(system: System, verb: str) -> System:
    system = System.objects.select_for_update().get(pk=system.pk)
    if system.votes_count or Vote.objects.filter(Q(system_a=system) | Q(system_b=system)).exists():
        # Results are never retracted: a system with votes stays, under its name, forever.
        raise ConflictError(f"{system.name!r} has votes; it cannot be {verb}.", code="system_has_votes")
    return system


@transaction.atomic
def system_update(*, system: System, actor: Actor, name: str, provider: str, notes: str) -> System:
    _check_open(Study.objects.get(pk=system.study_id))
    fields = _system_fields(name, provider, notes)
    # Compare with the row as stored, not the caller's copy: a stale copy must not rename a voted system.
    system = System.objects.select_for_update().get(pk=system.pk)
    if fields["name"] != system.name or fields["provider"] != system.provider:
        system = _lock_unvoted(system, "renamed")
    if System.objects.filter(study_id=system.study_id, name=fields["name"]).exclude(pk=system.pk).exists():
        raise ConflictError(f"A system named {fields['name']!r} is already registered.", code="duplicate")
    before = {key: getattr(system, key) for key in fields}
    for key, value in fields.items():
        setattr(system, key, value)
    system.save(update_fields=list(fields))
    # Uploads name responses by system; keep the label in step so later lookups by name agree.
    Response.objects.filter(system=system).update(label=system.name)
    audit_record(
        actor=actor,
        action="system.update",
        target=system,
        organization=system.study.organization,
        data={"before": before, "after": fields},
    )
    return system


@transaction.atomic
def system_delete(*, system: System, actor: Actor) -> None:
    system = _lock_unvoted(system, "deleted")
    study = system.study
    _check_open(study)
    if Task.objects.filter(Q(response_a__system=system) | Q(response_b__system=system)).exists():
        # Raters have been shown it (leases, skips, flags): that history stays.
        raise ConflictError(f"{system.name!r} has been shown to raters; it cannot be deleted.", code="system_in_use")
    audit_record(actor=actor, action="system.delete", target=system, organization=study.organization)
    # Nobody has voted on or seen it. Its responses go first (they protect the system) and take their
    # item pairs with them; deleting the system takes its pair totals.
    Response.objects.filter(system=system).delete()
    system.delete()


# --- Items --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemsUploaded:
    created: int
    gold: int
    item_pairs: int


@transaction.atomic
def items_upload(
    *, study: Study, actor: Actor, data: bytes, content_type: str = "", filename: str = ""
) -> ItemsUploaded:
    """Add items from a JSONL or CSV upload: every line valid, or nothing is added (ItemImportError)."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    _check_open(study)
    systems = {system.name: system for system in study.systems.all()}
    if len(systems) < 2:
        raise ApplicationError("Register at least two systems before uploading items.", code="no_systems")
    fmt = detect_format(content_type=content_type, filename=filename, data=data)
    rows = parse_items(
        data,
        fmt=fmt,
        system_names=systems.keys(),
        existing_prompt_ids=set(study.items.values_list("prompt_id", flat=True)),
        max_bytes=settings.ITEMS_UPLOAD_MAX_BYTES,
        max_line_bytes=settings.ITEMS_LINE_MAX_BYTES,
    )
    items = Item.objects.bulk_create([_item(study, row) for row in rows], batch_size=1000)
    responses = Response.objects.bulk_create(
        [
            _response(item, row, label, systems)
            for item, row in zip(items, rows, strict=True)
            for label in row.responses
        ],
        batch_size=1000,
    )
    pairs = _item_pairs_create(study, responses)
    result = ItemsUploaded(created=len(items), gold=sum(1 for row in rows if row.gold), item_pairs=pairs)
    audit_record(
        actor=actor,
        action="items.upload",
        target=study,
        data={"format": fmt, "filename": filename[:200], "created": result.created, "gold": result.gold},
    )
    return result


def _item(study: Study, row: ItemRow) -> Item:
    return Item(
        study=study,
        prompt_id=row.prompt_id,
        prompt=row.prompt,
        prompt_html=render_turns(row.prompt),
        language=row.language,
        category=row.category,
        is_gold=row.gold is not None,
        gold_answer=row.gold or "",
    )


def _response(item: Item, row: ItemRow, label: str, systems: dict[str, System]) -> Response:
    turns = row.responses[label]
    return Response(
        item=item,
        system=None if item.is_gold else systems[label],
        label=label,
        content=turns,
        content_html=render_turns(turns),
    )


def _item_pairs_create(study: Study, responses: Iterable[Response]) -> int:
    by_item: dict[int, list[Response]] = {}
    for response in responses:
        by_item.setdefault(response.item_id, []).append(response)
    return _item_pairs_add(
        study,
        (
            pair
            for item_responses in by_item.values()
            for pair in combinations(sorted(item_responses, key=lambda r: r.pk), 2)
        ),
    )


def _item_pairs_add(study: Study, response_pairs: Iterable[tuple[Response, Response]]) -> int:
    """Item pairs for (low, high) responses of one item, low the smaller id, and their system pairs' counts."""
    stats = _pair_stats_for(study)
    pairs: list[ItemPair] = []
    for low, high in response_pairs:
        stat = None if low.system_id is None else stats[tuple(sorted((low.system_id, high.system_id)))]
        pair = ItemPair(study=study, item_id=low.item_id, response_low=low, response_high=high, pair_stat=stat)
        pair.is_gold = stat is None
        pairs.append(pair)
    ItemPair.objects.bulk_create(pairs, batch_size=2000)
    added: dict[int, int] = {}
    for pair in pairs:
        if pair.pair_stat_id is not None:
            added[pair.pair_stat_id] = added.get(pair.pair_stat_id, 0) + 1
    for stat in stats.values():
        if stat.pk in added:
            stat.item_pairs_count += added[stat.pk]
            stat.save(update_fields=["item_pairs_count"])
    return len(pairs)


def _pair_stats_for(study: Study) -> dict[tuple[int, int], PairStat]:
    """Every system pair of the study (created on first need), keyed by (low id, high id)."""
    ids = sorted(study.systems.values_list("pk", flat=True))
    PairStat.objects.bulk_create(
        [PairStat(study=study, system_low_id=low, system_high_id=high) for low, high in combinations(ids, 2)],
        ignore_conflicts=True,
    )
    return {(s.system_low_id, s.system_high_id): s for s in PairStat.objects.filter(study=study)}


# --- Responses of a new system to existing items -----------------------------------------------


@dataclass(frozen=True)
class ResponsesUploaded:
    created: int
    item_pairs: int


@transaction.atomic
def responses_upload(*, study: Study, system: System, actor: Actor, data: bytes) -> ResponsesUploaded:
    """Add one system's responses to items the study already has (JSONL `{"prompt_id", "response"}`):
    every line valid, or nothing is added (ItemImportError). Each new response is paired with every
    other system's response to its item, so the system enters sampling like those uploaded with items."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    _check_open(study)
    system = System.objects.filter(pk=system.pk, study=study).first()
    if system is None:
        raise ApplicationError("The system is not registered in this study.", code="unknown_system")
    items = {prompt_id: (pk, gold) for pk, prompt_id, gold in study.items.values_list("pk", "prompt_id", "is_gold")}
    answered = set(
        Response.objects.filter(item__study=study)
        .filter(Q(system=system) | Q(label=system.name))
        .values_list("item__prompt_id", flat=True)
    )
    rows = parse_responses(
        data,
        items={prompt_id: gold for prompt_id, (_, gold) in items.items()},
        answered=answered,
        max_bytes=settings.ITEMS_UPLOAD_MAX_BYTES,
        max_line_bytes=settings.ITEMS_LINE_MAX_BYTES,
    )
    created = Response.objects.bulk_create(
        [
            Response(
                item_id=items[row.prompt_id][0],
                system=system,
                label=system.name,
                content=row.turns,
                content_html=render_turns(row.turns),
            )
            for row in rows
        ],
        batch_size=1000,
    )
    others: dict[int, list[Response]] = {}
    for response in Response.objects.filter(item_id__in=[r.item_id for r in created], system__isnull=False).exclude(
        system=system
    ):
        others.setdefault(response.item_id, []).append(response)
    pairs = _item_pairs_add(
        study,
        (
            tuple(sorted((other, new), key=lambda r: r.pk))  # low/high by id, as for uploaded items
            for new in created
            for other in others.get(new.item_id, [])
        ),
    )
    result = ResponsesUploaded(created=len(created), item_pairs=pairs)
    audit_record(
        actor=actor,
        action="responses.upload",
        target=study,
        data={"system": system.name, "created": result.created, "item_pairs": result.item_pairs},
    )
    return result
