"""The one way to write the audit log.

Domain functions call `audit_record` inside the transaction of the change it
describes, so the change and its record commit or roll back together.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from crowdplatform.accounts.principals import Actor, ApiKeyPrincipal, actor_user
from crowdplatform.core.models import AuditEvent

SYSTEM_LABEL = "system"


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    organization: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event. `organization` defaults to the target's own."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record() must run inside the transaction of the change it records.")
    api_key = actor.api_key if isinstance(actor, ApiKeyPrincipal) else None
    return AuditEvent.objects.create(
        actor_user=actor_user(actor),
        actor_api_key=api_key,
        actor_label=_actor_label(actor),
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:255] if target is not None else "",
        organization_id=_organization_id(target, organization),
        data=data or {},
    )


def _actor_label(actor: Actor) -> str:
    if actor is None or not actor.is_authenticated:
        return SYSTEM_LABEL
    return str(actor)[:255]


def _organization_id(target: models.Model | None, organization: models.Model | None) -> int | None:
    if organization is not None:
        return organization.pk
    if target is None:
        return None
    if target._meta.label_lower == "accounts.organization":
        return target.pk
    return getattr(target, "organization_id", None)
