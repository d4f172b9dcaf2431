"""Staff look at one rater and grant or revoke qualifications by hand."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import ExpertiseDomain, Qualification, QualificationTest, RaterProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_(db):
    return QualificationTest.objects.create(
        name="Tax law — English", domain=ExpertiseDomain.objects.get(slug="law"), language="en"
    )


def test_staff_grant_and_revoke_by_hand_with_reasons(client, staff_user, rater, test_):
    profile = RaterProfile.objects.get(user=rater)
    client.force_login(staff_user)
    page = client.get(reverse("staff:rater_detail", args=[profile.pk]))
    assert page.status_code == 200
    assert rater.email in page.text

    refused = client.post(
        reverse("staff:qualification_grant", args=[profile.pk]),
        {"test": test_.pk, "score": "0.9", "reason": ""},
        follow=True,
    )
    assert "give a reason" in refused.text
    assert Qualification.objects.count() == 0

    client.post(
        reverse("staff:qualification_grant", args=[profile.pk]),
        {"test": test_.pk, "score": "0.9", "reason": "Licensed tax adviser, checked by phone"},
    )
    qualification = Qualification.objects.get()
    assert (qualification.source, qualification.score, qualification.granted_by) == ("manual", 0.9, staff_user)

    url = reverse("staff:qualification_revoke", args=[profile.pk, qualification.pk])
    refused = client.post(url, {"reason": " "}, follow=True)
    assert "the rater sees the reason" in refused.text
    qualification.refresh_from_db()
    assert qualification.revoked_at is None

    client.post(url, {"reason": "Licence lapsed"})
    qualification.refresh_from_db()
    assert qualification.revoked_reason == "Licence lapsed"
    assert list(
        AuditEvent.objects.filter(action__startswith="qualification.").order_by("id").values_list("action", flat=True)
    ) == [
        "qualification.grant",
        "qualification.revoke",
    ]
    page = client.get(reverse("staff:rater_detail", args=[profile.pk]))
    assert "Licence lapsed" in page.text


def test_a_qualification_of_another_rater_is_not_found(client, staff_user, rater, test_):
    from crowdplatform.raters import services
    from tests.factories import UserFactory

    other = RaterProfile.objects.create(user=UserFactory())
    qualification = services.qualification_grant(profile=other, test=test_, score=0.9, reason="x", actor=staff_user)
    client.force_login(staff_user)
    mine = RaterProfile.objects.get(user=rater)
    response = client.post(
        reverse("staff:qualification_revoke", args=[mine.pk, qualification.pk]), {"reason": "mixed up"}
    )
    assert response.status_code == 404
    qualification.refresh_from_db()
    assert qualification.revoked_at is None


def test_only_staff(client, rater, owner):
    profile = RaterProfile.objects.get(user=rater)
    for user in (rater, owner):
        client.force_login(user)
        assert client.get(reverse("staff:rater_detail", args=[profile.pk])).status_code == 403
