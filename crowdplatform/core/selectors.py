from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from crowdplatform.core.models import AuditEvent


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""  # exact, or a prefix ending in "." (e.g. "api_key.")
    actor: str = ""  # part of the actor's label (an email, a key name)
    organization_id: int | None = None
    target_type: str = ""
    target_id: str = ""


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if filters.action:
        lookup = Q(action__startswith=filters.action) if filters.action.endswith(".") else Q(action=filters.action)
        events = events.filter(lookup)
    if filters.actor:
        events = events.filter(actor_label__icontains=filters.actor)
    if filters.organization_id is not None:
        events = events.filter(organization_id=filters.organization_id)
    if filters.target_type:
        events = events.filter(target_type=filters.target_type)
    if filters.target_id:
        events = events.filter(target_id=filters.target_id)
    return events.order_by("-id")


def audit_actions() -> list[str]:
    """The distinct actions recorded so far, for filter menus."""
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())
