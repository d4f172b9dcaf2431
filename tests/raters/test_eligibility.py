"""Eligibility: each requirement on its own, and together."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowdplatform.raters import services
from crowdplatform.raters.eligibility import (
    QualificationRequirement,
    RaterRequirements,
    eligible_raters,
    rater_is_eligible,
)
from crowdplatform.raters.models import ExpertiseDomain, Qualification, QualificationTest, RaterProfile
from crowdplatform.raters.services import ProfileInput
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def medical_test():
    return QualificationTest.objects.create(
        name="Medical accuracy — English", domain=ExpertiseDomain.objects.get(slug="medicine"), language="en"
    )


def make_rater(staff, *, status="approved", country="DE", languages=(("en", "fluent"),), domains=("medicine",)):
    user = UserFactory()
    profile = services.rater_profile_create(user=user, actor=user)
    data = ProfileInput(
        display_name=user.email,
        country=country,
        timezone="Europe/Berlin",
        years_of_experience=5,
        credentials="",
        languages=languages,
        domain_slugs=domains,
    )
    services.rater_profile_update(profile=profile, data=data, actor=user)
    if status != "draft":
        services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=True, actor=user)
    if status in ("approved", "suspended"):
        services.rater_status_decide(profile=profile, decision="approve", actor=staff)
    if status == "suspended":
        services.rater_status_decide(profile=profile, decision="suspend", reason="test", actor=staff)
    return RaterProfile.objects.get(pk=profile.pk)


def grant(profile, test, staff, score=0.9):
    return services.qualification_grant(profile=profile, test=test, score=score, reason="expert", actor=staff)


def names(queryset) -> set[str]:
    return {profile.display_name for profile in queryset}


def test_only_approved_raters_are_eligible(staff_user):
    raters = {status: make_rater(staff_user, status=status) for status in ("draft", "applied", "approved", "suspended")}
    assert names(eligible_raters(RaterRequirements())) == {raters["approved"].display_name}
    assert [
        rater_is_eligible(raters[s], RaterRequirements()) for s in ("draft", "applied", "approved", "suspended")
    ] == [
        False,
        False,
        True,
        False,
    ]


def test_deactivated_accounts_are_not_eligible(staff_user):
    profile = make_rater(staff_user)
    profile.user.is_active = False
    profile.user.save(update_fields=["is_active"])
    assert not rater_is_eligible(profile, RaterRequirements())


def test_qualification_must_be_held_in_force_with_the_minimum_score(staff_user, medical_test):
    requirements = RaterRequirements(qualifications=(QualificationRequirement(medical_test.pk, 0.8),))
    none, good, weak, revoked, expired = (make_rater(staff_user) for _ in range(5))
    grant(good, medical_test, staff_user, 0.9)
    grant(weak, medical_test, staff_user, 0.7)
    services.qualification_revoke(
        qualification=grant(revoked, medical_test, staff_user), reason="Cheated", actor=staff_user
    )
    Qualification.objects.filter(pk=grant(expired, medical_test, staff_user).pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert names(eligible_raters(requirements)) == {good.display_name}
    assert [rater_is_eligible(p, requirements) for p in (none, good, weak, revoked, expired)] == [
        False,
        True,
        False,
        False,
        False,
    ]


def test_every_required_qualification_is_needed(staff_user, medical_test):
    legal = QualificationTest.objects.create(
        name="Legal", domain=ExpertiseDomain.objects.get(slug="law"), language="en"
    )
    requirements = RaterRequirements(
        qualifications=(QualificationRequirement(medical_test.pk, 0.5), QualificationRequirement(legal.pk, 0.5))
    )
    both, one = make_rater(staff_user), make_rater(staff_user)
    grant(both, medical_test, staff_user)
    grant(both, legal, staff_user)
    grant(one, medical_test, staff_user)
    assert names(eligible_raters(requirements)) == {both.display_name}


def test_languages_need_working_proficiency_in_one_of_them(staff_user):
    fluent = make_rater(staff_user, languages=(("de", "native"),))
    basic = make_rater(staff_user, languages=(("de", "basic"),))
    other = make_rater(staff_user, languages=(("fr", "native"),))
    requirements = RaterRequirements(languages=("de", "en"))
    assert names(eligible_raters(requirements)) == {fluent.display_name}
    assert not rater_is_eligible(basic, requirements)
    assert not rater_is_eligible(other, requirements)


def test_domains_and_countries(staff_user):
    medic_de = make_rater(staff_user, country="DE", domains=("medicine",))
    medic_fr = make_rater(staff_user, country="FR", domains=("medicine", "law"))
    lawyer_de = make_rater(staff_user, country="DE", domains=("law",))
    assert names(eligible_raters(RaterRequirements(domains=("medicine",)))) == {
        medic_de.display_name,
        medic_fr.display_name,
    }
    assert names(eligible_raters(RaterRequirements(countries=("DE",)))) == {
        medic_de.display_name,
        lawyer_de.display_name,
    }
    together = RaterRequirements(domains=("medicine",), countries=("DE",))
    assert names(eligible_raters(together)) == {medic_de.display_name}


def test_eligibility_changes_with_suspension_and_reinstatement(staff_user, medical_test):
    requirements = RaterRequirements(qualifications=(QualificationRequirement(medical_test.pk, 0.8),))
    profile = make_rater(staff_user)
    grant(profile, medical_test, staff_user)
    assert rater_is_eligible(profile, requirements)
    services.rater_status_decide(profile=profile, decision="suspend", reason="Too fast", actor=staff_user)
    assert not rater_is_eligible(profile, requirements)
    services.rater_status_decide(profile=profile, decision="reinstate", actor=staff_user)
    assert rater_is_eligible(profile, requirements)


def test_eligibility_costs_one_query(staff_user, medical_test, django_assert_num_queries):
    requirements = RaterRequirements(
        qualifications=(QualificationRequirement(medical_test.pk, 0.8),),
        languages=("en",),
        domains=("medicine",),
        countries=("DE",),
    )
    profile = make_rater(staff_user)
    grant(profile, medical_test, staff_user)
    with django_assert_num_queries(1):
        assert rater_is_eligible(profile, requirements) is True
