"""Applying through the pages, and the staff review queue."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import RaterProfile

pytestmark = pytest.mark.django_db

FORM = {
    "display_name": "Grace",
    "country": "us",
    "timezone": "America/New_York",
    "years_of_experience": "8",
    "domains": ["software", "mathematics"],
    "credentials": "PhD, compilers",
    "language_1": "en",
    "proficiency_1": "native",
    "language_2": "",
    "proficiency_2": "",
    "language_3": "",
    "proficiency_3": "",
}


def test_a_rater_applies_through_the_pages_and_staff_approve(client, rater, staff_user):
    client.force_login(rater)
    home = client.get(reverse("rater:home"))
    assert "Still missing: display name, country, time zone" in home.text

    saved = client.post(reverse("rater:application"), FORM)
    assert saved["Location"] == reverse("rater:application")
    profile = RaterProfile.objects.get(user=rater)
    assert (profile.display_name, profile.country, profile.status) == ("Grace", "US", "draft")

    refused = client.post(reverse("rater:application_submit"), {"consent_terms": "on"}, follow=True)
    assert "Your application is incomplete: consent to the pay policy." in refused.text
    profile.refresh_from_db()
    assert profile.status == "draft"

    client.post(reverse("rater:application_submit"), {"consent_terms": "on", "consent_pay_policy": "on"})
    profile.refresh_from_db()
    assert profile.status == "applied"
    assert "Awaiting review" in client.get(reverse("rater:home")).text

    client.force_login(staff_user)
    queue = client.get(reverse("staff:rater_applications"))
    assert [p.pk for p in queue.context["page"].items] == [profile.pk]
    assert "PhD, compilers" in queue.text
    client.post(reverse("staff:rater_applications_decide"), {"profiles": [profile.pk], "decision": "approve"})
    profile.refresh_from_db()
    assert profile.status == "approved"

    client.force_login(rater)
    assert "Approved" in client.get(reverse("rater:home")).text


def test_invalid_form_values_show_field_errors_and_change_nothing(client, rater):
    client.force_login(rater)
    response = client.post(reverse("rater:application"), {**FORM, "timezone": "Nowhere/Here"})
    assert response.status_code == 200
    assert "is not a known time zone" in response.text
    profile = RaterProfile.objects.get(user=rater)
    assert (profile.display_name, profile.timezone) == ("", "")
    assert not AuditEvent.objects.filter(action="rater_profile.update").exists()


def test_rejection_reason_is_shown_to_the_rater(client, rater, staff_user):
    client.force_login(rater)
    client.post(reverse("rater:application"), FORM)
    client.post(reverse("rater:application_submit"), {"consent_terms": "on", "consent_pay_policy": "on"})
    profile = RaterProfile.objects.get(user=rater)
    client.force_login(staff_user)
    refused = client.post(
        reverse("staff:rater_applications_decide"), {"profiles": [profile.pk], "decision": "reject"}, follow=True
    )
    assert "the rater sees the reason" in refused.text
    client.post(
        reverse("staff:rater_applications_decide"),
        {"profiles": [profile.pk], "decision": "reject", "reason": "We need raters with medical licences."},
    )
    client.force_login(rater)
    home = client.get(reverse("rater:home")).text
    assert "We need raters with medical licences." in home
    assert "Revise and reapply" in home


def test_queue_filters(client, staff_user, rater):
    client.force_login(rater)
    client.post(reverse("rater:application"), FORM)
    client.post(reverse("rater:application_submit"), {"consent_terms": "on", "consent_pay_policy": "on"})
    client.force_login(staff_user)
    url = reverse("staff:rater_applications")
    assert len(client.get(url, {"domain": "software", "language": "en", "country": "us"}).context["page"].items) == 1
    assert len(client.get(url, {"domain": "law"}).context["page"].items) == 0
    assert len(client.get(url, {"language": "fr"}).context["page"].items) == 0
    assert len(client.get(url, {"status": "approved"}).context["page"].items) == 0


def test_only_staff_review(client, rater, owner):
    for user in (rater, owner):
        client.force_login(user)
        assert client.get(reverse("staff:rater_applications")).status_code == 403
        assert client.post(reverse("staff:rater_applications_decide"), {}).status_code == 403


def test_decision_redirect_stays_on_the_queue(client, staff_user):
    client.force_login(staff_user)
    response = client.post(reverse("staff:rater_applications_decide"), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("staff:rater_applications")


def test_the_rater_sees_qualifications_with_expiry_and_revocation_reasons(client, rater, staff_user):
    from crowdplatform.raters import services
    from crowdplatform.raters.models import ExpertiseDomain, QualificationTest

    profile = RaterProfile.objects.get(user=rater)
    domain = ExpertiseDomain.objects.get(slug="law")
    kept = QualificationTest.objects.create(name="Contract law — English", domain=domain, language="en")
    lost = QualificationTest.objects.create(name="Tax law — English", domain=domain, language="en")
    granted = services.qualification_grant(profile=profile, test=kept, score=0.9, reason="bar exam", actor=staff_user)
    revoked = services.qualification_grant(profile=profile, test=lost, score=0.8, reason="x", actor=staff_user)
    services.qualification_revoke(qualification=revoked, reason="Answers copied from a forum", actor=staff_user)
    client.force_login(rater)
    page = client.get(reverse("rater:home")).text
    assert "Contract law — English" in page
    assert f"valid until {granted.expires_at:%Y-%m-%d}" in page
    assert "Answers copied from a forum" in page
