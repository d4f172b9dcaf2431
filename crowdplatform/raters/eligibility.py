"""Who may work on a study: the one place that answers it.

Task assignment (evaluations) and recruitment call these two functions;
nothing else re-implements the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from crowdplatform.raters.models import ApplicationStatus, Proficiency, Qualification, RaterLanguage, RaterProfile

# Working in a language means at least professional proficiency in it.
WORKING_PROFICIENCIES = (Proficiency.NATIVE, Proficiency.FLUENT, Proficiency.PROFESSIONAL)


@dataclass(frozen=True)
class QualificationRequirement:
    test_id: int
    min_score: float


@dataclass(frozen=True)
class RaterRequirements:
    """What a study asks of its raters. An empty field asks nothing.

    - qualifications: every one held, in force (not revoked, not expired), with at least the minimum score;
    - languages: at least one of them at professional proficiency or better;
    - domains: expertise in at least one of them (slugs);
    - countries: living in one of them (ISO codes).
    """

    qualifications: tuple[QualificationRequirement, ...] = ()
    languages: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()


def eligible_raters(requirements: RaterRequirements, *, at: datetime | None = None) -> QuerySet[RaterProfile]:
    """Approved raters (so not suspended) who meet every requirement."""
    at = at or timezone.now()
    raters = RaterProfile.objects.filter(status=ApplicationStatus.APPROVED, user__is_active=True)
    for requirement in requirements.qualifications:
        in_force = Qualification.objects.filter(
            profile=OuterRef("pk"),
            test_id=requirement.test_id,
            revoked_at__isnull=True,
            expires_at__gt=at,
            score__gte=requirement.min_score,
        )
        raters = raters.filter(Exists(in_force))
    if requirements.languages:
        speaks = RaterLanguage.objects.filter(
            profile=OuterRef("pk"), language__in=requirements.languages, proficiency__in=WORKING_PROFICIENCIES
        )
        raters = raters.filter(Exists(speaks))
    if requirements.domains:
        expert = RaterProfile.domains.through.objects.filter(
            raterprofile_id=OuterRef("pk"), expertisedomain__slug__in=requirements.domains
        )
        raters = raters.filter(Exists(expert))
    if requirements.countries:
        raters = raters.filter(country__in=requirements.countries)
    return raters


def rater_is_eligible(profile: RaterProfile, requirements: RaterRequirements, *, at: datetime | None = None) -> bool:
    return eligible_raters(requirements, at=at).filter(pk=profile.pk).exists()
