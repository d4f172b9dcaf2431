"""The rater application: profile, submission and staff decisions."""

from __future__ import annotations

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.models import ApplicationStatus, ExpertiseDomain, RaterProfile
from crowdplatform.raters.services import ProfileInput

pytestmark = pytest.mark.django_db

COMPLETE = ProfileInput(
    display_name="Ada",
    country="DE",
    timezone="Europe/Berlin",
    years_of_experience=12,
    credentials="MD, Charité",
    languages=(("en", "fluent"), ("de", "native")),
    domain_slugs=("medicine", "science"),
)


def profile_of(user) -> RaterProfile:
    return RaterProfile.objects.get(user=user)


def snapshot(profile: RaterProfile) -> tuple:
    profile.refresh_from_db()
    return (
        profile.status,
        profile.display_name,
        profile.country,
        profile.status_reason,
        sorted(profile.languages.values_list("language", "proficiency")),
        sorted(profile.domains.values_list("slug", flat=True)),
        AuditEvent.objects.count(),
    )


def applied(user) -> RaterProfile:
    profile = profile_of(user)
    services.rater_profile_update(profile=profile, data=COMPLETE, actor=user)
    return services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=True, actor=user)


def test_the_starting_domains_exist():
    assert list(ExpertiseDomain.objects.values_list("slug", flat=True)) == [
        "creative-writing",
        "education",
        "finance",
        "general",
        "law",
        "mathematics",
        "medicine",
        "science",
        "software",
    ]


def test_profile_update_saves_everything_and_audits(rater):
    profile = services.rater_profile_update(profile=profile_of(rater), data=COMPLETE, actor=rater)
    assert snapshot(profile)[1:6] == (
        "Ada",
        "DE",
        "",
        [("de", "native"), ("en", "fluent")],
        ["medicine", "science"],
    )
    assert profile.timezone == "Europe/Berlin"
    assert profile.years_of_experience == 12
    event = AuditEvent.objects.get(action="rater_profile.update")
    assert event.data == {"languages": [["en", "fluent"], ["de", "native"]], "domains": ["medicine", "science"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"country": "Germany"}, "country"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"years_of_experience": 200}, "years_of_experience"),
        ({"languages": (("english", "fluent"),)}, "languages"),
        ({"languages": (("en", "fluent"), ("en", "native"))}, "languages"),
        ({"languages": (("en", ""),)}, "languages"),
        ({"domain_slugs": ("astrology",)}, "domains"),
    ],
)
def test_invalid_profile_input_changes_nothing(rater, change, field):
    profile = profile_of(rater)
    before = snapshot(profile)
    data = ProfileInput(**{**COMPLETE.__dict__, **change})
    with pytest.raises(ApplicationError) as error:
        services.rater_profile_update(profile=profile, data=data, actor=rater)
    assert list(error.value.fields) == [field]
    assert snapshot(profile) == before


def test_incomplete_application_is_refused_with_what_is_missing(rater):
    profile = profile_of(rater)
    services.rater_profile_update(
        profile=profile, data=ProfileInput(**{**COMPLETE.__dict__, "languages": (), "country": ""}), actor=rater
    )
    before = snapshot(profile)
    with pytest.raises(ApplicationError) as error:
        services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=False, actor=rater)
    assert error.value.code == "incomplete"
    assert error.value.fields == {"missing": ["country", "at least one language", "consent to the pay policy"]}
    assert error.value.message == (
        "Your application is incomplete: country, at least one language, consent to the pay policy."
    )
    assert snapshot(profile) == before


def test_complete_application_is_submitted_once(rater):
    profile = applied(rater)
    assert profile.status == ApplicationStatus.APPLIED
    assert profile.submitted_at is not None
    assert profile.consented_terms_at == profile.consented_pay_policy_at == profile.submitted_at
    before = snapshot(profile)
    with pytest.raises(ConflictError, match="one application per person"):
        services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=True, actor=rater)
    with pytest.raises(ConflictError, match="cannot be edited now"):
        services.rater_profile_update(profile=profile, data=COMPLETE, actor=rater)
    assert snapshot(profile) == before


def test_approve_then_suspend_then_reinstate(rater, staff_user):
    profile = applied(rater)
    profile = services.rater_status_decide(profile=profile, decision="approve", actor=staff_user)
    assert (profile.status, profile.reviewed_by) == ("approved", staff_user)
    profile = services.rater_status_decide(
        profile=profile, decision="suspend", reason="Gold accuracy 40%", actor=staff_user
    )
    assert (profile.status, profile.status_reason) == ("suspended", "Gold accuracy 40%")
    profile = services.rater_status_decide(profile=profile, decision="reinstate", actor=staff_user)
    assert (profile.status, profile.status_reason) == ("approved", "")
    assert list(
        AuditEvent.objects.filter(action__startswith="rater_application.").order_by("id").values_list("action", "data")
    ) == [
        ("rater_application.submit", {}),
        ("rater_application.approve", {"from": "applied", "to": "approved", "reason": ""}),
        ("rater_application.suspend", {"from": "approved", "to": "suspended", "reason": "Gold accuracy 40%"}),
        ("rater_application.reinstate", {"from": "suspended", "to": "approved", "reason": ""}),
    ]


def test_rejection_needs_a_reason_the_rater_sees_and_allows_reapplying(rater, staff_user):
    profile = applied(rater)
    before = snapshot(profile)
    with pytest.raises(ApplicationError, match="the rater sees the reason"):
        services.rater_status_decide(profile=profile, decision="reject", reason="  ", actor=staff_user)
    assert snapshot(profile) == before
    profile = services.rater_status_decide(
        profile=profile, decision="reject", reason="No medical credentials given", actor=staff_user
    )
    assert (profile.status, profile.status_reason) == ("rejected", "No medical credentials given")
    services.rater_profile_update(profile=profile, data=COMPLETE, actor=rater)
    profile = services.rater_application_submit(
        profile=profile, consent_terms=True, consent_pay_policy=True, actor=rater
    )
    assert (profile.status, profile.status_reason) == ("applied", "")


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        ("draft", "approve"),
        ("approved", "approve"),
        ("applied", "suspend"),
        ("approved", "reinstate"),
        ("rejected", "approve"),
    ],
)
def test_invalid_transitions_change_nothing(rater, staff_user, status, decision):
    profile = profile_of(rater)
    RaterProfile.objects.filter(pk=profile.pk).update(status=status)
    before = snapshot(profile)
    with pytest.raises(ConflictError) as error:
        services.rater_status_decide(profile=profile, decision=decision, reason="because", actor=staff_user)
    assert error.value.code == "invalid_transition"
    assert snapshot(profile) == before


def test_decide_many_reports_each_refusal(staff_user):
    from tests.factories import UserFactory

    raters = [UserFactory() for _ in range(3)]
    for user in raters:
        services.rater_profile_create(user=user, actor=user)
    ready = [applied(raters[0]), applied(raters[1])]
    outcome = services.rater_status_decide_many(
        profiles=[*ready, profile_of(raters[2])], decision="approve", actor=staff_user
    )
    assert [p.user for p in outcome.decided] == raters[:2]
    assert [(p.user, why) for p, why in outcome.refused] == [
        (raters[2], "Cannot approve a rater whose status is not submitted.")
    ]
