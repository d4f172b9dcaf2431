"""Taking a qualification test through the pages, and the issue's whole path to eligibility."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crowdplatform.raters.eligibility import QualificationRequirement, RaterRequirements, rater_is_eligible
from crowdplatform.raters.models import ExpertiseDomain, QualificationItem, QualificationTest, RaterProfile
from tests.factories import UserFactory
from tests.raters.test_views import FORM

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_(db):
    test = QualificationTest.objects.create(
        name="Software — English", domain=ExpertiseDomain.objects.get(slug="software"), language="en", pass_score=0.8
    )
    for n in range(1, 11):
        QualificationItem.objects.create(
            test=test,
            position=n,
            item_id=f"q{n}",
            prompt=f"Which fix is right? ({n})",
            response_a="Use a lock.",
            response_b="Sleep and hope.",
            answer="A",
            explanation="Only a lock prevents the race.",
        )
    return test


def test_apply_approve_pass_and_become_eligible(client, staff_user, test_):
    user = UserFactory()
    client.force_login(user)
    client.get(reverse("rater:home"))  # the portal creates the rater profile on first visit
    client.post(reverse("rater:application"), FORM)
    client.post(reverse("rater:application_submit"), {"consent_terms": "on", "consent_pay_policy": "on"})
    profile = RaterProfile.objects.get(user=user)
    requirements = RaterRequirements(
        qualifications=(QualificationRequirement(test_.pk, 0.8),), languages=("en",), domains=("software",)
    )
    assert not rater_is_eligible(profile, requirements)

    client.force_login(staff_user)
    client.post(reverse("staff:rater_applications_decide"), {"profiles": [profile.pk], "decision": "approve"})

    client.force_login(user)
    assert "Software — English" in client.get(reverse("rater:home")).text
    response = client.post(reverse("rater:attempt_start", args=[test_.pk]))
    attempt_url = response["Location"]
    page = client.get(attempt_url)
    assert "Which fix is right? (1)" in page.text
    assert "Only a lock prevents the race." not in page.text  # no answers before grading

    items = list(test_.items.order_by("position"))
    attempt_id = page.context["attempt"].pk
    saved = client.post(reverse("rater:attempt_answer", args=[attempt_id]), {f"item-{items[0].pk}": "A"})
    assert saved.text == "Saved"
    rest = {f"item-{item.pk}": "A" for item in items[1:9]} | {f"item-{items[9].pk}": "B"}
    client.post(reverse("rater:attempt_submit", args=[attempt_id]), rest)

    result = client.get(attempt_url)
    assert "9 of 10" in result.text
    assert "passed" in result.text
    assert "Only a lock prevents the race." in result.text
    assert rater_is_eligible(profile, requirements)
    other = UserFactory()
    RaterProfile.objects.create(user=other, status="approved")
    assert not rater_is_eligible(RaterProfile.objects.get(user=other), requirements)


def test_another_rater_cannot_see_or_answer_an_attempt(client, staff_user, test_):
    owner = UserFactory()
    RaterProfile.objects.create(user=owner, status="approved")
    client.force_login(owner)
    attempt_url = client.post(reverse("rater:attempt_start", args=[test_.pk]))["Location"]
    attempt_id = int(attempt_url.rstrip("/").split("/")[-1])
    intruder = UserFactory()
    RaterProfile.objects.create(user=intruder, status="approved")
    client.force_login(intruder)
    assert client.get(attempt_url).status_code == 404
    assert client.post(reverse("rater:attempt_submit", args=[attempt_id])).status_code == 404


def test_an_unapproved_rater_is_told_why(client, rater, test_):
    client.force_login(rater)
    response = client.post(reverse("rater:attempt_start", args=[test_.pk]), follow=True)
    assert "Qualification tests open once your application is approved." in response.text
