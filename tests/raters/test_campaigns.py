"""Recruitment campaigns: creation, invite links that tag applications, the funnel, the queue filter."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from crowdplatform.accounts.models import User
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.models import ExpertiseDomain, QualificationTest, RaterProfile, RecruitmentCampaign
from crowdplatform.raters.selectors import Funnel, campaign_funnel
from crowdplatform.raters.services import CampaignInput

pytestmark = pytest.mark.django_db

MEDICS = CampaignInput(
    name="Clinicians for triage answers",
    description="Doctors and nurses to compare triage advice.",
    raters_wanted=20,
    languages=("en",),
    domain_slugs=("medicine",),
    countries=("GB", "IE"),
)


def test_campaign_create(staff_user):
    campaign = services.campaign_create(data=MEDICS, actor=staff_user)
    assert (campaign.languages, campaign.countries, campaign.raters_wanted) == (["en"], ["GB", "IE"], 20)
    assert list(campaign.domains.values_list("slug", flat=True)) == ["medicine"]
    assert len(campaign.token) == 16
    assert AuditEvent.objects.filter(action="campaign.create").count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": " "}, "name"),
        ({"raters_wanted": 0}, "raters_wanted"),
        ({"languages": ("English",)}, "languages"),
        ({"countries": ("GBR",)}, "countries"),
        ({"domain_slugs": ("astrology",)}, "domains"),
    ],
)
def test_invalid_campaigns_are_refused(staff_user, change, field):
    with pytest.raises(ApplicationError) as error:
        services.campaign_create(data=CampaignInput(**{**MEDICS.__dict__, **change}), actor=staff_user)
    assert list(error.value.fields) == [field]
    assert RecruitmentCampaign.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_signing_up_through_the_invite_link_tags_the_application(client, staff_user):
    campaign = services.campaign_create(data=MEDICS, actor=staff_user)
    page = client.get(reverse("campaign_join", args=[campaign.token]))
    assert "Clinicians for triage answers" in page.text
    client.post(
        reverse("account_signup"),
        {
            "email": "nurse@example.org",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
            "account_type": "rater",
        },
    )
    assert len(mail.outbox) == 1
    profile = RaterProfile.objects.get(user__email="nurse@example.org")
    assert profile.campaign == campaign


def test_a_signed_up_rater_joins_with_one_click_once(client, staff_user, rater):
    campaign = services.campaign_create(data=MEDICS, actor=staff_user)
    other = services.campaign_create(data=CampaignInput(**{**MEDICS.__dict__, "name": "Other"}), actor=staff_user)
    client.force_login(rater)
    client.post(reverse("campaign_join", args=[campaign.token]))
    client.post(reverse("campaign_join", args=[other.token]))
    assert RaterProfile.objects.get(user=rater).campaign == campaign  # the first campaign keeps the applicant


def test_closed_campaigns_and_submitted_applications_are_refused(staff_user, rater):
    campaign = services.campaign_create(data=MEDICS, actor=staff_user)
    profile = RaterProfile.objects.get(user=rater)
    RecruitmentCampaign.objects.filter(pk=campaign.pk).update(is_open=False)
    campaign.refresh_from_db()
    with pytest.raises(ConflictError, match="closed"):
        services.rater_profile_join_campaign(profile=profile, campaign=campaign, actor=rater)
    RecruitmentCampaign.objects.filter(pk=campaign.pk).update(is_open=True)
    campaign.refresh_from_db()
    RaterProfile.objects.filter(pk=profile.pk).update(status="applied")
    with pytest.raises(ConflictError, match="already applied"):
        services.rater_profile_join_campaign(profile=profile, campaign=campaign, actor=rater)
    profile.refresh_from_db()
    assert profile.campaign is None


def test_funnel_counts_each_stage(client, staff_user):
    from tests.factories import UserFactory

    campaign = services.campaign_create(data=MEDICS, actor=staff_user)
    test = QualificationTest.objects.create(
        name="T", domain=ExpertiseDomain.objects.get(slug="medicine"), language="en"
    )
    statuses = ["draft", "applied", "approved", "approved", "suspended", "rejected"]
    for n, status in enumerate(statuses):
        profile = RaterProfile.objects.create(
            user=UserFactory(),
            campaign=campaign,
            status=status,
            submitted_at=None if status == "draft" else "2026-11-01T00:00Z",
        )
        if n == 2:
            services.qualification_grant(profile=profile, test=test, score=0.9, reason="x", actor=staff_user)
    assert campaign_funnel(campaign) == Funnel(applied=5, approved=3, qualified=1, active=0)
    client.force_login(staff_user)
    page = client.get(reverse("staff:campaign", args=[campaign.pk]))
    assert [(bar["label"], bar["count"]) for bar in page.context["bars"]] == [
        ("Applied", 5),
        ("Approved", 3),
        ("Qualified", 1),
        ("Active", 0),
    ]
    assert f"/join/{campaign.token}/" in page.text
    queue = client.get(reverse("staff:rater_applications"), {"status": "", "campaign": campaign.pk})
    assert len(queue.context["page"].items) == 6


def test_staff_open_a_campaign_through_the_page(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        reverse("staff:campaigns"),
        {"name": "Lawyers", "raters_wanted": "5", "languages": "en, de", "countries": "de", "domains": ["law"]},
    )
    campaign = RecruitmentCampaign.objects.get()
    assert response["Location"] == reverse("staff:campaign", args=[campaign.pk])
    assert (campaign.languages, campaign.countries) == (["en", "de"], ["DE"])
    bad = client.post(reverse("staff:campaigns"), {"name": "X", "raters_wanted": "5", "languages": "english"})
    assert "Use language codes" in bad.text
    assert RecruitmentCampaign.objects.count() == 1


def test_only_staff_manage_campaigns(client, rater):
    client.force_login(rater)
    assert client.get(reverse("staff:campaigns")).status_code == 403
    assert User.objects.count() == 1


def test_a_client_owner_opens_a_campaign_for_its_organization(client, organization, owner, member, other_owner):
    url = reverse("client:campaigns", args=[organization.slug])
    client.force_login(member)
    assert client.post(url, {"name": "Ours", "raters_wanted": "4"}).status_code == 403
    assert RecruitmentCampaign.objects.count() == 0
    client.force_login(owner)
    response = client.post(url, {"name": "Ours", "raters_wanted": "4", "languages": "en"})
    campaign = RecruitmentCampaign.objects.get()
    assert campaign.organization == organization
    assert response["Location"] == reverse("client:campaign", args=[organization.slug, campaign.pk])
    page = client.get(response["Location"])
    assert f"/join/{campaign.token}/" in page.text
    assert "pseudonymous" in page.text
    client.force_login(other_owner)
    assert client.get(reverse("client:campaign", args=[organization.slug, campaign.pk])).status_code == 404
