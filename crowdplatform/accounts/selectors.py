from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db.models import QuerySet
from django.utils import timezone

from crowdplatform.accounts.models import ApiKey, Invitation, Membership, Organization, User


def organization_members(organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("created_at", "id")


def organization_open_invitations(organization: Organization) -> QuerySet[Invitation]:
    return organization.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True).select_related(
        "invited_by"
    )


def organization_api_keys(organization: Organization) -> QuerySet[ApiKey]:
    return organization.api_keys.select_related("created_by").order_by("-created_at", "-id")


def invitations_for_user(user: User) -> QuerySet[Invitation]:
    """Open, unexpired invitations to any of the user's verified addresses."""
    emails = list(EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True))
    return (
        Invitation.objects.filter(
            email__in=[email.lower() for email in emails],
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .exclude(organization__memberships__user=user)
        .select_related("organization", "invited_by")
    )


def memberships_of(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")
