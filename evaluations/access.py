"""Who may see a study and who may take tasks: the helpers every view and endpoint calls.

- Clients see and run the studies of their organizations (members and API keys alike);
  staff see every study; anything else is reported missing (404), never forbidden.
- Only raters take tasks, and only their own: task lookups are always filtered by rater.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from crowdplatform.accounts.access import is_staff, organization_for, organizations_visible_to
from crowdplatform.accounts.models import AccountType, Organization, User
from crowdplatform.accounts.principals import Actor
from crowdplatform.raters.models import RaterProfile
from evaluations.models import Study


def studies_visible_to(actor: Actor) -> QuerySet[Study]:
    if is_staff(actor):
        return Study.objects.all()
    return Study.objects.filter(organization__in=organizations_visible_to(actor))


def study_for(actor: Actor, pk: object) -> Study:
    study = studies_visible_to(actor).select_related("organization").filter(pk=pk).first()
    if study is None:
        raise Http404("No such study.")
    return study


def client_study_for(actor: Actor, *, slug: str, study_id: object) -> tuple[Organization, Study]:
    """A client page's organization (from its URL) and study: the study must be visible to the actor
    and belong to that organization, else 404 (a study id under another organization's URL included)."""
    organization = organization_for(actor, slug=slug)  # type: ignore[arg-type]
    study = study_for(actor, study_id)
    if study.organization_id != organization.pk:
        raise Http404("No such study.")
    return organization, study


def rater_profile_of(actor: Actor) -> RaterProfile:
    """The acting rater's profile; anyone else (clients, API keys, staff) is refused."""
    if not isinstance(actor, User) or actor.account_type != AccountType.RATER:
        raise PermissionDenied("Only raters take tasks.")
    profile = RaterProfile.objects.filter(user=actor).first()
    if profile is None:
        raise PermissionDenied("Complete your rater application first.")
    return profile
