"""The client portal: organizations, members, invitations and API keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from crowdplatform.accounts import selectors, services
from crowdplatform.accounts.access import (
    CLIENT_AREA,
    area_required,
    can_manage_organization,
    organization_for,
    organization_role,
)
from crowdplatform.accounts.forms import ApiKeyForm, InvitationForm, OrganizationForm, RoleForm
from crowdplatform.accounts.models import Invitation, Membership, Organization
from crowdplatform.core.errors import ApplicationError

NEW_API_KEY_SESSION_KEY = "new_api_key"


@area_required(CLIENT_AREA)
def client_home(request: HttpRequest) -> HttpResponse:
    memberships = list(selectors.memberships_of(request.user))  # type: ignore[arg-type]
    context = {
        "memberships": memberships,
        "invitations": selectors.invitations_for_user(request.user),  # type: ignore[arg-type]
        "form": OrganizationForm(),
    }
    return render(request, "accounts/client_home.html", context)


@require_POST
@area_required(CLIENT_AREA)
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the organization a name.")
        return redirect("client:home")
    organization = services.organization_create(
        name=form.cleaned_data["name"],
        owner=request.user,
        actor=request.user,  # type: ignore[arg-type]
    )
    messages.success(request, f"Created {organization.name}. You are its owner.")
    return redirect("client:organization", slug=organization.slug)


@area_required(CLIENT_AREA)
def organization_detail(request: HttpRequest, slug: str) -> HttpResponse:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    context = {
        "organization": organization,
        "role": organization_role(request.user, organization),  # type: ignore[arg-type]
        "can_manage": can_manage_organization(request.user, organization),  # type: ignore[arg-type]
        "members": selectors.organization_members(organization),
        "invitations": selectors.organization_open_invitations(organization),
        "api_keys": selectors.organization_api_keys(organization),
        "new_api_key": request.session.pop(NEW_API_KEY_SESSION_KEY, None),
        "invitation_form": InvitationForm(),
        "api_key_form": ApiKeyForm(),
        "role_form": RoleForm(),
        "studies": organization.studies.all()[:10],
    }
    return render(request, "accounts/organization_detail.html", context)


def _owner_action(handler: Callable[..., str]) -> Callable[..., HttpResponse]:
    """POST-only organization action for owners; an ApplicationError becomes a message."""

    @require_POST
    @area_required(CLIENT_AREA)
    def view(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
        organization = organization_for(request.user, slug=slug, manage=True)  # type: ignore[arg-type]
        try:
            done = handler(request, organization, **kwargs)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, done)
        return redirect("client:organization", slug=organization.slug)

    view.__name__ = handler.__name__
    return view


@_owner_action
def invitation_create(request: HttpRequest, organization: Organization) -> str:
    form = InvitationForm(request.POST)
    if not form.is_valid():
        raise ApplicationError("Enter a valid email address and role.")
    invitation = services.invitation_create(
        organization=organization, email=form.cleaned_data["email"], role=form.cleaned_data["role"], actor=request.user
    )
    return f"Invitation sent to {invitation.email}."


@_owner_action
def invitation_revoke(request: HttpRequest, organization: Organization, invitation_id: int) -> str:
    invitation = get_object_or_404(Invitation, pk=invitation_id, organization=organization)
    services.invitation_revoke(invitation=invitation, actor=request.user)  # type: ignore[arg-type]
    return f"Invitation to {invitation.email} withdrawn."


@_owner_action
def membership_set_role(request: HttpRequest, organization: Organization, membership_id: int) -> str:
    membership = get_object_or_404(Membership, pk=membership_id, organization=organization)
    form = RoleForm(request.POST)
    if not form.is_valid():
        raise ApplicationError("Choose a valid role.")
    services.membership_set_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)  # type: ignore[arg-type]
    return f"{membership.user.email} is now {form.cleaned_data['role']}."


@_owner_action
def membership_remove(request: HttpRequest, organization: Organization, membership_id: int) -> str:
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, organization=organization
    )
    services.membership_remove(membership=membership, actor=request.user)  # type: ignore[arg-type]
    return f"{membership.user.email} was removed."


@_owner_action
def api_key_create(request: HttpRequest, organization: Organization) -> str:
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        raise ApplicationError("Give the key a name.")
    api_key, raw_key = services.api_key_create(
        organization=organization, name=form.cleaned_data["name"], actor=request.user
    )  # type: ignore[arg-type]
    # Shown once, on the next page, then gone from the session.
    request.session[NEW_API_KEY_SESSION_KEY] = {"name": api_key.name, "key": raw_key}
    return f"Created the key “{api_key.name}”. Copy it now: it will not be shown again."


@_owner_action
def api_key_revoke(request: HttpRequest, organization: Organization, api_key_id: int) -> str:
    api_key = get_object_or_404(organization.api_keys, pk=api_key_id)
    services.api_key_revoke(api_key=api_key, actor=request.user)  # type: ignore[arg-type]
    return f"Revoked the key “{api_key.name}”. Requests using it now get 401."


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(token=token).first()
    if invitation is None:
        raise Http404("No such invitation.")
    if request.method == "POST":
        try:
            membership = services.invitation_accept(invitation=invitation, user=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"You joined {membership.organization.name} as {membership.role}.")
            return redirect("client:organization", slug=membership.organization.slug)
    return render(request, "accounts/invitation_accept.html", {"invitation": invitation})
