"""Every change to providers, public leaderboards, their policy and submissions.

Each function is one transaction with its audit row (`integrity.*`). The leaderboard's parameters
are the same for every provider: no function here takes a provider-specific weight, cap or window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from crowdplatform.accounts.access import is_staff, organization_role, organizations_visible_to
from crowdplatform.accounts.models import Organization, Role
from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.integrity.models import (
    LicenseClass,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    Submission,
)
from evaluations import sampling
from evaluations import services as evaluations
from evaluations.models import Study, StudyStatus

# The published parameters and the least each may be (a cap of 0 forbids pre-release testing).
PARAMETER_MINIMUMS: dict[str, int] = {
    "period_days": 1,
    "prerelease_cap": 0,
    "window_days": 1,
    "provisional_votes": 0,
    "retire_after_votes": 1,
    "retire_newer_required": 1,
}
PARAMETERS = tuple(PARAMETER_MINIMUMS)
PARAMETER_MAXIMUM = 32_767  # the smallest column (PositiveSmallIntegerField) bounds them all
SUBMITTER_ROLES = frozenset({Role.OWNER, Role.MEMBER})
# The organization that owns a leaderboard's study reads its votes as they arrive (exports, quality);
# a provider reads them only when a period's battles are released to everyone. One cannot be both.
_OPERATOR_NOT_PROVIDER = (
    "{organization} owns a public leaderboard's study and would see its votes before everyone else: "
    "it cannot also be a provider on it. Run the leaderboard from a separate organization."
)
MAX_NAME = 100


# --- Checks shared by the functions below -------------------------------------------------------


def _require_staff(actor: Actor, what: str) -> None:
    if not is_staff(actor):
        raise PermissionDenied(f"Only staff may {what}.")


def _checked_parameters(parameters: dict[str, Any]) -> dict[str, int]:
    """Known parameters with whole-number values in range; ApplicationError names each problem."""
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ApplicationError(
            f"Unknown parameter(s): {', '.join(unknown)}. The parameters are {', '.join(PARAMETERS)}.",
            code="unknown_parameter",
            fields={name: ["Unknown parameter."] for name in unknown},
        )
    errors: dict[str, list[str]] = {}
    for name, value in parameters.items():
        minimum = PARAMETER_MINIMUMS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= PARAMETER_MAXIMUM:
            errors[name] = [f"A whole number from {minimum} to {PARAMETER_MAXIMUM}."]
    if errors:
        raise ApplicationError("The parameters are not valid.", fields=errors)
    return dict(parameters)


def _checked_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ApplicationError(
            "Write the policy text: it is published with every version.",
            code="policy_text_required",
            fields={"text": ["Required."]},
        )
    return text


def parameters_of(leaderboard: PublicLeaderboard) -> dict[str, int]:
    """The leaderboard's parameters as a PolicyVersion records them."""
    return {name: getattr(leaderboard, name) for name in PARAMETERS}


def _policy_version_add(leaderboard: PublicLeaderboard, *, text: str, actor: Actor) -> PolicyVersion:
    """The next policy version, recording the leaderboard's parameters as they now stand."""
    last = leaderboard.policy_versions.order_by("-number").values_list("number", flat=True).first() or 0
    return PolicyVersion.objects.create(
        leaderboard=leaderboard,
        number=last + 1,
        text=text,
        parameters=parameters_of(leaderboard),
        effective_at=timezone.now(),
        created_by=actor_user(actor),
    )


# --- Providers ----------------------------------------------------------------------------------


@transaction.atomic
def provider_register(
    *, name: str, actor: Actor, organization: Organization | None = None, website: str = ""
) -> Provider:
    """Register a provider (staff only). A client organization may be one: its members then submit for it."""
    _require_staff(actor, "register providers")
    name = (name or "").strip()
    website = (website or "").strip()
    errors: dict[str, list[str]] = {}
    if not name or len(name) > MAX_NAME:
        errors["name"] = [f"Name the provider (up to {MAX_NAME} characters)."]
    elif not slugify(name):
        errors["name"] = ["Use at least one letter or digit."]
    if website:
        try:
            URLValidator(schemes=["http", "https"])(website)
        except ValidationError:
            errors["website"] = ["A web address starting with http:// or https://."]
    if errors:
        raise ApplicationError("The provider is not valid.", fields=errors)
    slug = slugify(name)[:MAX_NAME]
    if Provider.objects.filter(name__iexact=name).exists() or Provider.objects.filter(slug=slug).exists():
        raise ConflictError(f"A provider named {name!r} is already registered.", code="duplicate")
    if organization is not None and Provider.objects.filter(organization=organization).exists():
        raise ConflictError(f"{organization.name} is already a provider.", code="duplicate")
    if organization is not None and PublicLeaderboard.objects.filter(study__organization=organization).exists():
        raise ConflictError(_OPERATOR_NOT_PROVIDER.format(organization=organization.name), code="operator_is_provider")
    provider = Provider.objects.create(
        name=name, slug=slug, organization=organization, website=website, registered_by=actor_user(actor)
    )
    audit_record(
        actor=actor,
        action="integrity.provider_register",
        target=provider,
        organization=organization,
        data={"name": name, "slug": slug, "organization_id": organization.pk if organization else None},
    )
    return provider


# --- Leaderboards and their policy --------------------------------------------------------------


@transaction.atomic
def leaderboard_create(
    *,
    study: Study,
    name: str,
    slug: str,
    starts_at: datetime,
    actor: Actor,
    policy_text: str,
    **parameters: Any,
) -> PublicLeaderboard:
    """Run a public leaderboard over `study` (staff only): the study becomes public and samples with
    `active`, and the policy's first version is published with the parameters."""
    _require_staff(actor, "create public leaderboards")
    parameters = _checked_parameters(parameters)
    text = _checked_text(policy_text)
    name, slug = (name or "").strip(), (slug or "").strip()
    errors: dict[str, list[str]] = {}
    if not name or len(name) > 200:
        errors["name"] = ["Name the leaderboard (up to 200 characters)."]
    if not slug or slug != slugify(slug) or len(slug) > MAX_NAME:
        errors["slug"] = ["Lower-case letters, digits and hyphens (up to 100)."]
    if errors:
        raise ApplicationError("The leaderboard is not valid.", fields=errors)
    study = Study.objects.select_for_update().select_related("organization").get(pk=study.pk)
    if study.status in (StudyStatus.COMPLETED, StudyStatus.ARCHIVED):
        raise ConflictError(f"The study is {study.status}; it cannot run a leaderboard.", code="study_closed")
    if PublicLeaderboard.objects.filter(study=study).exists():
        raise ConflictError("The study already runs a public leaderboard.", code="leaderboard_exists")
    if Provider.objects.filter(organization=study.organization_id).exists():
        raise ConflictError(
            _OPERATOR_NOT_PROVIDER.format(organization=study.organization.name), code="operator_is_provider"
        )
    if PublicLeaderboard.objects.filter(slug=slug).exists():
        raise ConflictError(f"A leaderboard with the slug {slug!r} exists.", code="duplicate")
    before = {"is_public": study.is_public, "sampling": study.sampling}
    # Public, and sampled where votes are needed, for every provider alike.
    study.is_public = True
    study.sampling = sampling.ACTIVE
    study.save(update_fields=["is_public", "sampling"])
    leaderboard = PublicLeaderboard.objects.create(
        study=study, name=name, slug=slug, starts_at=starts_at, created_by=actor_user(actor), **parameters
    )
    version = _policy_version_add(leaderboard, text=text, actor=actor)
    audit_record(
        actor=actor,
        action="integrity.leaderboard_create",
        target=leaderboard,
        organization=study.organization,
        data={"study_id": study.pk, "study_before": before, "policy_version": version.number, **version.parameters},
    )
    return leaderboard


@transaction.atomic
def policy_publish(
    *, leaderboard: PublicLeaderboard, text: str, actor: Actor, **parameter_changes: Any
) -> PolicyVersion:
    """Publish the policy's next version (staff only). Changed parameters apply to every provider from now on."""
    _require_staff(actor, "publish the leaderboard policy")
    changes = _checked_parameters(parameter_changes)
    text = _checked_text(text)
    leaderboard = PublicLeaderboard.objects.select_for_update().select_related("study").get(pk=leaderboard.pk)
    before = parameters_of(leaderboard)
    for name, value in changes.items():
        setattr(leaderboard, name, value)
    if changes:
        leaderboard.save(update_fields=list(changes))
    version = _policy_version_add(leaderboard, text=text, actor=actor)
    audit_record(
        actor=actor,
        action="integrity.policy_publish",
        target=version,
        organization=leaderboard.study.organization,
        data={
            "leaderboard_id": leaderboard.pk,
            "number": version.number,
            "changed": {name: [before[name], value] for name, value in changes.items() if before[name] != value},
        },
    )
    return version


# --- Submissions --------------------------------------------------------------------------------


def prerelease_used(
    *, leaderboard: PublicLeaderboard, provider: Provider, period_start: datetime, period_end: datetime
) -> int:
    """The provider's pre-release variants counting against the cap of the period: the service's count
    and the provider page's. Counted by registration time within the period, so a changed period length
    (a new policy version) still counts every variant tested in the current period."""
    return Submission.objects.filter(
        leaderboard=leaderboard,
        provider=provider,
        prerelease=True,
        registered_at__gte=period_start,
        registered_at__lt=period_end,
    ).count()


def period_bounds(leaderboard: PublicLeaderboard, at: datetime) -> tuple[datetime, datetime]:
    """The period containing `at`: periods of `period_days` back to back from `starts_at`."""
    length = timedelta(days=leaderboard.period_days)
    start = leaderboard.starts_at + ((at - leaderboard.starts_at) // length) * length
    return start, start + length


def may_submit_for(actor: Actor, provider: Provider) -> bool:
    if is_staff(actor):
        return True
    if provider.organization is None:
        return False
    return organization_role(actor, provider.organization) in SUBMITTER_ROLES


def may_read_prompts(actor: Actor) -> bool:
    """Staff, and every provider's organization alike (members of any role, and its API keys): providers
    answer the leaderboards' prompts, so each gets all of them, the same for all."""
    return is_staff(actor) or organizations_visible_to(actor).filter(provider__isnull=False).exists()


@transaction.atomic
def submission_register(
    *,
    leaderboard: PublicLeaderboard,
    provider: Provider,
    name: str,
    license_class: str,
    prerelease: bool,
    actor: Actor,
    notes: str = "",
    now: datetime | None = None,
) -> Submission:
    """Enter a provider's system on the leaderboard before it gets any vote (staff, or an owner or
    member of the provider's organization). `name` is the system's public name; for a pre-release
    variant, its codename. Pre-release variants count against the cap, the same for every provider."""
    now = now or timezone.now()
    provider = Provider.objects.select_related("organization").get(pk=provider.pk)
    if not may_submit_for(actor, provider):
        raise PermissionDenied("Only staff or the provider's own organization may submit its systems.")
    if license_class not in LicenseClass.values:
        raise ApplicationError(
            "The license class is not valid.",
            fields={"license_class": [f"One of {', '.join(LicenseClass.values)}."]},
        )
    leaderboard = PublicLeaderboard.objects.select_related("study").get(pk=leaderboard.pk)
    if now < leaderboard.starts_at:
        raise ConflictError(
            f"The leaderboard opens on {leaderboard.starts_at:%Y-%m-%d %H:%M} UTC; submit from then on.",
            code="not_started",
        )
    period_start, period_end = period_bounds(leaderboard, now)
    # The provider's row lock serializes its registrations: two at once cannot both take the last slot.
    Provider.objects.select_for_update().filter(pk=provider.pk).first()
    if prerelease:
        _check_prerelease_cap(leaderboard, provider, period_start, period_end)
    system = evaluations.system_register(
        study=leaderboard.study, actor=actor, name=name, provider=provider.name, notes=notes
    )
    submission = Submission.objects.create(
        leaderboard=leaderboard,
        provider=provider,
        system=system,
        license_class=license_class,
        prerelease=bool(prerelease),
        period_start=period_start,
        registered_at=now,
        registered_by=actor_user(actor),
        window_ends_at=now + timedelta(days=leaderboard.window_days),
    )
    audit_record(
        actor=actor,
        action="integrity.submission_register",
        target=submission,
        organization=provider.organization,
        data={
            "leaderboard_id": leaderboard.pk,
            "provider": provider.name,
            "system": system.name,
            "license_class": license_class,
            "prerelease": submission.prerelease,
            "period_start": period_start.isoformat(),
        },
    )
    return submission


def _check_prerelease_cap(
    leaderboard: PublicLeaderboard, provider: Provider, period_start: datetime, period_end: datetime
) -> None:
    used = prerelease_used(leaderboard=leaderboard, provider=provider, period_start=period_start, period_end=period_end)
    if used >= leaderboard.prerelease_cap:
        raise ConflictError(
            f"{provider.name} has registered {used} pre-release variant(s) in the period that began on "
            f"{period_start:%Y-%m-%d %H:%M} UTC; the cap is {leaderboard.prerelease_cap} per "
            f"provider per period, the same for everyone. The next period starts on "
            f"{period_end:%Y-%m-%d %H:%M} UTC. A named (released) system does not count against the cap.",
            code="prerelease_cap_reached",
        )


@transaction.atomic
def submission_responses_upload(*, submission: Submission, actor: Actor, data: bytes) -> evaluations.ResponsesUploaded:
    """The submitted system's answers to the leaderboard's prompts (JSONL `{"prompt_id", "response"}`),
    by the same people who may submit for its provider; every line valid or nothing added."""
    if not may_submit_for(actor, submission.provider):
        raise PermissionDenied("Only staff or the provider's own organization may upload its system's responses.")
    if submission.retired_at is not None:
        raise ConflictError(f"{submission.system.name!r} is retired: it takes no new responses.", code="retired")
    result = evaluations.responses_upload(
        study=submission.leaderboard.study, system=submission.system, actor=actor, data=data
    )
    audit_record(
        actor=actor,
        action="integrity.responses_upload",
        target=submission,
        data={"system": submission.system.name, "created": result.created, "item_pairs": result.item_pairs},
    )
    return result
