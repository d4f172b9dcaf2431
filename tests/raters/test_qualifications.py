"""Granting and revoking qualifications by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.models import ExpertiseDomain, Qualification, QualificationTest, RaterProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_(db):
    return QualificationTest.objects.create(
        name="Code review — English",
        domain=ExpertiseDomain.objects.get(slug="software"),
        language="en",
        validity_days=30,
    )


def test_grant_by_hand_needs_a_reason_and_sets_the_expiry(rater, staff_user, test_):
    profile = RaterProfile.objects.get(user=rater)
    with pytest.raises(ApplicationError, match="Say why"):
        services.qualification_grant(profile=profile, test=test_, score=0.9, reason=" ", actor=staff_user)
    with pytest.raises(ApplicationError, match="between 0 and 1"):
        services.qualification_grant(profile=profile, test=test_, score=1.5, reason="x", actor=staff_user)
    assert Qualification.objects.count() == 0
    assert not AuditEvent.objects.filter(action="qualification.grant").exists()

    granted = services.qualification_grant(
        profile=profile, test=test_, score=0.85, reason="Senior reviewer at a known lab", actor=staff_user
    )
    assert (granted.source, granted.granted_by, granted.expires_at - granted.granted_at) == (
        "manual",
        staff_user,
        timedelta(days=30),
    )
    event = AuditEvent.objects.get(action="qualification.grant")
    assert event.data == {
        "test": "Code review — English",
        "score": 0.85,
        "source": "manual",
        "reason": "Senior reviewer at a known lab",
    }


def test_a_new_grant_supersedes_the_old_one(rater, staff_user, test_):
    profile = RaterProfile.objects.get(user=rater)
    first = services.qualification_grant(profile=profile, test=test_, score=0.7, reason="a", actor=staff_user)
    second = services.qualification_grant(profile=profile, test=test_, score=0.9, reason="b", actor=staff_user)
    first.refresh_from_db()
    assert first.revoked_reason == "Superseded by a newer grant."
    assert list(Qualification.objects.filter(revoked_at__isnull=True)) == [second]


def test_revoke_needs_a_reason_and_happens_once(rater, staff_user, test_):
    profile = RaterProfile.objects.get(user=rater)
    qualification = services.qualification_grant(profile=profile, test=test_, score=0.9, reason="a", actor=staff_user)
    with pytest.raises(ApplicationError, match="the rater sees the reason"):
        services.qualification_revoke(qualification=qualification, reason="", actor=staff_user)
    qualification.refresh_from_db()
    assert qualification.revoked_at is None
    services.qualification_revoke(qualification=qualification, reason="Shared answers", actor=staff_user)
    with pytest.raises(ConflictError, match="no longer in force"):
        services.qualification_revoke(qualification=qualification, reason="again", actor=staff_user)
    assert AuditEvent.objects.filter(action="qualification.revoke").count() == 1
