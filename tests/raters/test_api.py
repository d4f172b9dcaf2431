"""Campaign and qualification-test API: staff see all, clients their own, applicants pseudonymous."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crowdplatform.raters import services
from crowdplatform.raters.models import ExpertiseDomain, QualificationItem, QualificationTest, RaterProfile
from crowdplatform.raters.services import CampaignInput
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_campaign(organization, owner):
    return services.campaign_create(
        data=CampaignInput(name="Alpha's coders", description="", raters_wanted=3, domain_slugs=("software",)),
        actor=owner,
        organization=organization,
    )


@pytest.fixture
def applicant(private_campaign):
    user = UserFactory(email="secret.person@example.org")
    profile = RaterProfile.objects.create(user=user, display_name="Secret Person", country="DE")
    services.rater_profile_join_campaign(profile=profile, campaign=private_campaign, actor=user)
    return profile


def test_clients_see_their_applicants_pseudonymously(api_client, api_key_pair, private_campaign, applicant):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    campaigns = api_client.get(reverse("api:campaign-list")).json()
    assert [c["name"] for c in campaigns["results"]] == ["Alpha's coders"]
    body = api_client.get(reverse("api:campaign-applicant-list", args=[private_campaign.pk])).json()
    [row] = body["results"]
    assert set(row) == {"rater", "status", "country", "languages", "domains", "submitted_at"}
    assert len(row["rater"]) == 16
    assert "secret" not in str(row).lower()
    again = api_client.get(reverse("api:campaign-applicant-list", args=[private_campaign.pk])).json()
    assert again["results"][0]["rater"] == row["rater"]  # stable


def test_staff_see_who_applied(api_client, staff_user, private_campaign, applicant):
    api_client.force_authenticate(staff_user)
    [row] = api_client.get(reverse("api:campaign-applicant-list", args=[private_campaign.pk])).json()["results"]
    assert (row["email"], row["display_name"], row["country"]) == ("secret.person@example.org", "Secret Person", "DE")


def test_another_client_gets_404(api_client, other_owner, private_campaign, applicant):
    api_client.force_authenticate(other_owner)
    assert api_client.get(reverse("api:campaign-applicant-list", args=[private_campaign.pk])).status_code == 404
    assert api_client.get(reverse("api:campaign-list")).json()["results"] == []


def test_pseudonyms_differ_across_campaigns(private_campaign, applicant):
    from crowdplatform.core.pseudonyms import pseudonym

    assert pseudonym(scope="campaign:1", value=applicant.pk) != pseudonym(scope="campaign:2", value=applicant.pk)


def test_qualification_tests_are_readable_without_their_answers(api_client, api_key_pair):
    test = QualificationTest.objects.create(
        name="Medical accuracy — English", domain=ExpertiseDomain.objects.get(slug="medicine"), language="en"
    )
    QualificationItem.objects.create(
        test=test, position=1, item_id="q1", prompt="p", response_a="a", response_b="b", answer="A", explanation="e"
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    listing = api_client.get(reverse("api:qualification-test-list")).json()
    assert listing == [
        {
            "id": test.pk,
            "name": "Medical accuracy — English",
            "domain": "medicine",
            "language": "en",
            "pass_score": 0.8,
            "validity_days": 365,
            "time_limit_seconds": 1200,
            "retake_cooldown_hours": 24,
            "max_attempts": 3,
            "is_active": True,
            "items": 1,
        }
    ]
    detail = api_client.get(reverse("api:qualification-test-detail", args=[test.pk])).json()
    assert "answer" not in str(detail)


def test_listing_qualification_tests_costs_the_same_for_many_tests(api_client, staff_user, django_assert_num_queries):
    domain = ExpertiseDomain.objects.get(slug="medicine")
    for n in range(5):
        QualificationTest.objects.create(name=f"T{n}", domain=domain, language="en")
    api_client.force_authenticate(staff_user)
    with django_assert_num_queries(1):
        assert len(api_client.get(reverse("api:qualification-test-list")).json()) == 5
