"""Organizations, memberships and invitations: the domain functions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from crowdplatform.accounts import services
from crowdplatform.accounts.models import AccountType, Invitation, Membership, Organization, Role
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_organization_create_makes_the_owner_and_audits(owner):
    organization = services.organization_create(name="  Deep Lab ", owner=owner, actor=owner)
    assert (organization.name, organization.slug) == ("Deep Lab", "deep-lab")
    assert list(Membership.objects.filter(organization=organization).values_list("user", "role")) == [
        (owner.pk, "owner")
    ]
    event = AuditEvent.objects.get(action="organization.create")
    assert (event.actor_user, event.organization_id, event.data) == (owner, organization.pk, {"owner": owner.email})


def test_organization_slugs_stay_unique(owner):
    slugs = [services.organization_create(name="Same Name", owner=owner, actor=owner).slug for _ in range(3)]
    assert slugs == ["same-name", "same-name-2", "same-name-3"]
    assert services.organization_create(name="!!!", owner=owner, actor=owner).slug == "organization"


def test_organization_create_refuses_a_blank_name(owner):
    before = Organization.objects.count()
    with pytest.raises(ApplicationError, match="needs a name"):
        services.organization_create(name="   ", owner=owner, actor=owner)
    assert Organization.objects.count() == before
    assert AuditEvent.objects.count() == 0


def test_the_last_owner_cannot_be_demoted_or_removed(organization, owner):
    membership = Membership.objects.get(user=owner)
    with pytest.raises(ConflictError, match="at least one owner"):
        services.membership_set_role(membership=membership, role=Role.MEMBER, actor=owner)
    with pytest.raises(ConflictError, match="at least one owner"):
        services.membership_remove(membership=membership, actor=owner)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert AuditEvent.objects.count() == 0


def test_roles_change_and_members_leave_with_an_audit_trail(organization, owner, member):
    membership = Membership.objects.get(user=member)
    services.membership_set_role(membership=membership, role=Role.OWNER, actor=owner)
    services.membership_set_role(membership=Membership.objects.get(user=owner), role=Role.MEMBER, actor=owner)
    services.membership_remove(membership=Membership.objects.get(user=owner), actor=member)
    assert list(Membership.objects.values_list("user", "role")) == [(member.pk, "owner")]
    assert list(AuditEvent.objects.order_by("id").values_list("action", "data")) == [
        ("membership.role_change", {"user": member.email, "from": "member", "to": "owner"}),
        ("membership.role_change", {"user": owner.email, "from": "owner", "to": "member"}),
        ("membership.remove", {"user": owner.email, "role": "member"}),
    ]


def test_invitation_is_emailed_after_commit_and_accepted_by_the_verified_address(
    organization, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        invitation = services.invitation_create(
            organization=organization, email="New@Lab.example", role=Role.MEMBER, actor=owner
        )
        assert len(mail.outbox) == 0  # not before the invitation is committed
    assert len(callbacks) == 1
    assert invitation.email == "new@lab.example"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@lab.example"]
    assert reverse("invitation_accept", args=[invitation.token]) in mail.outbox[0].body

    invitee = UserFactory(email="new@lab.example", account_type=AccountType.RATER)
    membership = services.invitation_accept(invitation=invitation, user=invitee)
    assert (membership.organization, membership.role) == (organization, Role.MEMBER)
    invitation.refresh_from_db()
    invitee.refresh_from_db()
    assert invitation.accepted_by == invitee
    assert invitee.account_type == AccountType.CLIENT
    with pytest.raises(ConflictError, match="already been accepted"):
        services.invitation_accept(invitation=invitation, user=invitee)


def test_invitation_refuses_someone_else(organization, owner):
    invitation = services.invitation_create(
        organization=organization, email="a@lab.example", role=Role.OWNER, actor=owner
    )
    stranger = UserFactory(email="b@lab.example")
    unverified = UserFactory(email="a@lab.example", verified_email=False)
    for user in (stranger, unverified):
        with pytest.raises(ApplicationError, match="log in with that verified address"):
            services.invitation_accept(invitation=invitation, user=user)
    assert Membership.objects.filter(organization=organization).count() == 1
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_expired_and_revoked_invitations_cannot_be_accepted(organization, owner):
    invitee = UserFactory(email="late@lab.example")
    invitation = services.invitation_create(
        organization=organization, email=invitee.email, role=Role.MEMBER, actor=owner
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ConflictError, match="expired"):
        services.invitation_accept(invitation=invitation, user=invitee)
    services.invitation_revoke(invitation=invitation, actor=owner)
    with pytest.raises(ConflictError, match="withdrawn"):
        services.invitation_accept(invitation=invitation, user=invitee)
    assert not Membership.objects.filter(user=invitee).exists()


def test_one_open_invitation_per_address(organization, owner, member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(organization=organization, email="x@lab.example", role=Role.MEMBER, actor=owner)
    with pytest.raises(ConflictError, match="already has an open invitation"):
        services.invitation_create(organization=organization, email="X@lab.example", role=Role.MEMBER, actor=owner)
    with pytest.raises(ConflictError, match="already a member"):
        services.invitation_create(organization=organization, email=member.email, role=Role.MEMBER, actor=owner)
    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1


def test_invitation_flow_through_the_pages(client, organization, owner):
    client.force_login(owner)
    client.post(
        reverse("client:invitation_create", args=[organization.slug]), {"email": "web@lab.example", "role": "member"}
    )
    invitation = Invitation.objects.get()
    invitee = UserFactory(email="web@lab.example", account_type=AccountType.CLIENT)
    client.force_login(invitee)
    assert "Invitations for you" in client.get(reverse("client:home")).text
    page = client.get(reverse("invitation_accept", args=[invitation.token]))
    assert "Accept and join" in page.text
    response = client.post(reverse("invitation_accept", args=[invitation.token]))
    assert response["Location"] == reverse("client:organization", args=[organization.slug])
    assert Membership.objects.filter(user=invitee, organization=organization, role="member").exists()


def test_members_cannot_invite(client, organization, member):
    client.force_login(member)
    response = client.post(
        reverse("client:invitation_create", args=[organization.slug]), {"email": "x@lab.example", "role": "owner"}
    )
    assert response.status_code == 403
    assert Invitation.objects.count() == 0
