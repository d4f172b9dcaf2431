from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from crowdplatform.raters.models import ApplicationStatus, RaterProfile, RecruitmentCampaign


@dataclass(frozen=True)
class ApplicationFilters:
    status: str = ""
    domain: str = ""  # slug
    language: str = ""  # BCP 47 code
    country: str = ""  # ISO code
    campaign: int | None = None


def rater_applications(filters: ApplicationFilters) -> QuerySet[RaterProfile]:
    """Raters for the staff review queue (the page orders them by id)."""
    profiles = RaterProfile.objects.select_related("user").prefetch_related("languages", "domains")
    if filters.status:
        profiles = profiles.filter(status=filters.status)
    if filters.domain:
        profiles = profiles.filter(domains__slug=filters.domain)
    if filters.language:
        profiles = profiles.filter(languages__language=filters.language)
    if filters.campaign is not None:
        profiles = profiles.filter(campaign_id=filters.campaign)
    if filters.country:
        profiles = profiles.filter(country=filters.country.upper())
    return profiles.distinct()


@dataclass(frozen=True)
class Funnel:
    applied: int
    approved: int
    qualified: int
    active: int  # approved raters with at least one vote


def campaign_funnel(campaign: RecruitmentCampaign) -> Funnel:
    """How far the campaign's applicants got: submitted, approved (even if later suspended), qualified."""
    applicants = campaign.applicants.filter(submitted_at__isnull=False)
    approved = applicants.filter(status__in=[ApplicationStatus.APPROVED, ApplicationStatus.SUSPENDED])
    qualified = approved.filter(
        qualifications__revoked_at__isnull=True, qualifications__expires_at__gt=timezone.now()
    ).distinct()
    active = approved.filter(votes__isnull=False).distinct()
    return Funnel(
        applied=applicants.count(), approved=approved.count(), qualified=qualified.count(), active=active.count()
    )
