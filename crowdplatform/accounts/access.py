"""Who may see or change what. Views and API endpoints call these helpers
instead of writing their own checks.

An object the actor may not see is reported as missing (404), never as
forbidden, so that ids of other organizations reveal nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from crowdplatform.accounts.models import AccountType, Membership, Organization, Role, User
from crowdplatform.accounts.principals import Actor, ApiKeyPrincipal


def is_staff(actor: Actor) -> bool:
    return isinstance(actor, User) and actor.is_active and actor.is_staff


def organizations_visible_to(actor: Actor) -> QuerySet[Organization]:
    """Staff see every organization, a user those they belong to, a key its own."""
    if actor is None or not actor.is_authenticated:
        return Organization.objects.none()
    if isinstance(actor, ApiKeyPrincipal):
        return Organization.objects.filter(pk=actor.organization_id)
    if is_staff(actor):
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=actor)


def organization_role(actor: Actor, organization: Organization) -> str | None:
    """The actor's role in the organization; an API key counts as a member."""
    if isinstance(actor, ApiKeyPrincipal):
        return Role.MEMBER if actor.organization_id == organization.pk else None
    if not isinstance(actor, User):
        return None
    return Membership.objects.filter(organization=organization, user=actor).values_list("role", flat=True).first()


def can_view_organization(actor: Actor, organization: Organization) -> bool:
    return is_staff(actor) or organization_role(actor, organization) is not None


def can_manage_organization(actor: Actor, organization: Organization) -> bool:
    """Owners manage members and API keys; staff may too. Keys never may."""
    return is_staff(actor) or organization_role(actor, organization) == Role.OWNER


def organization_for(actor: Actor, *, manage: bool = False, **lookup: Any) -> Organization:
    """The organization matching `lookup` (pk=… or slug=…) if the actor may see it.

    Raises Http404 when it does not exist or is not visible, PermissionDenied
    when it is visible but `manage` is asked and the actor may not manage it.
    """
    organization = organizations_visible_to(actor).filter(**lookup).distinct().first()
    if organization is None:
        raise Http404("No such organization.")
    if manage and not can_manage_organization(actor, organization):
        raise PermissionDenied("Only an owner of this organization may do that.")
    return organization


# --- Areas of the site --------------------------------------------------------------------------

STAFF_AREA = "staff"
CLIENT_AREA = "client"
RATER_AREA = "rater"


def home_url_for(user: User) -> str:
    """Where a user lands after logging in."""
    if user.is_staff:
        return reverse("staff:dashboard")
    if user.account_type == AccountType.CLIENT:
        return reverse("client:home")
    return reverse("rater:home")


def may_enter_area(user: User, area: str) -> bool:
    if user.is_staff:
        return True
    if area == CLIENT_AREA:
        return user.account_type == AccountType.CLIENT
    if area == RATER_AREA:
        return user.account_type == AccountType.RATER
    return False


def area_required(area: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Page decorator: log in first, then be allowed into `area`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not may_enter_area(request.user, area):  # type: ignore[arg-type]
                raise PermissionDenied(f"This part of the site is for {AREA_AUDIENCE[area]}.")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


AREA_AUDIENCE = {STAFF_AREA: "staff", CLIENT_AREA: "lab clients", RATER_AREA: "raters"}
