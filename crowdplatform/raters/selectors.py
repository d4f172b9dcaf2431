from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from crowdplatform.raters.models import RaterProfile


@dataclass(frozen=True)
class ApplicationFilters:
    status: str = ""
    domain: str = ""  # slug
    language: str = ""  # BCP 47 code
    country: str = ""  # ISO code


def rater_applications(filters: ApplicationFilters) -> QuerySet[RaterProfile]:
    """Raters for the staff review queue (the page orders them by id)."""
    profiles = RaterProfile.objects.select_related("user").prefetch_related("languages", "domains")
    if filters.status:
        profiles = profiles.filter(status=filters.status)
    if filters.domain:
        profiles = profiles.filter(domains__slug=filters.domain)
    if filters.language:
        profiles = profiles.filter(languages__language=filters.language)
    if filters.country:
        profiles = profiles.filter(country=filters.country.upper())
    return profiles.distinct()
