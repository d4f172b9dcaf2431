"""Demo raters at every stage, and a qualification test they passed or failed.

Everything goes through the real domain functions, and nothing is redone:
a rater already past the draft stage, or a test already imported, is left as it is.
"""

from __future__ import annotations

import json

from crowdplatform.accounts.models import User
from crowdplatform.raters import services
from crowdplatform.raters.models import (
    ApplicationStatus,
    ExpertiseDomain,
    QualificationTest,
    RaterProfile,
    RecruitmentCampaign,
)

# Each demo rater's application stage and, for approved raters, how many of the 10 test items they get right.
RATER_STAGES: dict[str, tuple[str, int | None]] = {
    "rater1@example.com": (ApplicationStatus.APPROVED, 9),  # passed
    "rater2@example.com": (ApplicationStatus.APPLIED, None),
    "rater3@example.com": (ApplicationStatus.DRAFT, None),
    "rater4@example.com": (ApplicationStatus.REJECTED, None),
    "rater5@example.com": (ApplicationStatus.SUSPENDED, None),
    "rater6@example.com": (ApplicationStatus.APPROVED, 5),  # failed
}
DEMO_TEST_NAME = "Software answers — English (demo)"
DEMO_CAMPAIGN = services.CampaignInput(
    name="Software raters — English (demo)",
    description="Engineers who can tell a correct fix from a plausible one.",
    raters_wanted=10,
    languages=("en",),
    domain_slugs=("software",),
)
CAMPAIGN_RATERS = {"rater1@example.com", "rater2@example.com", "rater6@example.com"}

DEMO_PROFILE = services.ProfileInput(
    display_name="",
    country="GB",
    timezone="Europe/London",
    years_of_experience=6,
    credentials="MSc; six years of technical writing.",
    languages=(("en", "native"), ("fr", "professional")),
    domain_slugs=("general", "software"),
)


def _demo_items() -> list[bytes]:
    items = []
    for n in range(1, 11):
        good_is_a = n % 2 == 1
        good, bad = "Wrap both updates in one transaction.", "Run the two updates one after the other."
        items.append(
            json.dumps(
                {
                    "item_id": f"demo-{n}",
                    "prompt": f"Two rows must change together (case {n}). How?",
                    "response_a": good if good_is_a else bad,
                    "response_b": bad if good_is_a else good,
                    "answer": "A" if good_is_a else "B",
                    "explanation": "Only a transaction makes both changes happen or neither.",
                }
            ).encode()
        )
    return items


def _demo_test(reviewer: User) -> QualificationTest:
    existing = QualificationTest.objects.filter(name=DEMO_TEST_NAME).first()
    return existing or services.qualification_test_import(
        name=DEMO_TEST_NAME,
        domain=ExpertiseDomain.objects.get_or_create(slug="software", defaults={"name": "Software engineering"})[0],
        language="en",
        pass_score=0.8,
        lines=_demo_items(),
        actor=reviewer,
    )


def _take_test(profile: RaterProfile, test: QualificationTest, right: int) -> None:
    if profile.attempts.filter(test=test).exists():
        return
    attempt = services.qualification_attempt_start(profile=profile, test=test, actor=profile.user)
    items = list(test.items.order_by("position"))
    wrong = {"A": "B", "B": "A"}
    answers = {item.pk: (item.answer if i < right else wrong[item.answer]) for i, item in enumerate(items)}
    services.qualification_attempt_answer(attempt=attempt, answers=answers, actor=profile.user)
    services.qualification_attempt_submit(attempt=attempt, actor=profile.user)


def _demo_campaign(reviewer: User) -> RecruitmentCampaign:
    existing = RecruitmentCampaign.objects.filter(name=DEMO_CAMPAIGN.name).first()
    return existing or services.campaign_create(data=DEMO_CAMPAIGN, actor=reviewer)


def _bring_to_stage(user: User, stage: str, reviewer: User, campaign: RecruitmentCampaign) -> RaterProfile:
    profile = services.rater_profile_create(user=user, actor=None)
    if profile.status != ApplicationStatus.DRAFT or stage == ApplicationStatus.DRAFT:
        return profile
    if user.email in CAMPAIGN_RATERS:
        services.rater_profile_join_campaign(profile=profile, campaign=campaign, actor=user)
    data = services.ProfileInput(**{**DEMO_PROFILE.__dict__, "display_name": user.email.split("@")[0].capitalize()})
    services.rater_profile_update(profile=profile, data=data, actor=user)
    services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=True, actor=user)
    if stage == ApplicationStatus.REJECTED:
        reason = "We need raters with published work in this domain; add it and reapply."
        services.rater_status_decide(profile=profile, decision="reject", reason=reason, actor=reviewer)
    elif stage in (ApplicationStatus.APPROVED, ApplicationStatus.SUSPENDED):
        services.rater_status_decide(profile=profile, decision="approve", actor=reviewer)
    if stage == ApplicationStatus.SUSPENDED:
        reason = "Answers far faster than anyone could read them."
        services.rater_status_decide(profile=profile, decision="suspend", reason=reason, actor=reviewer)
    return RaterProfile.objects.get(pk=profile.pk)


def demo_raters_ensure(*, reviewer: User) -> None:
    test = _demo_test(reviewer)
    campaign = _demo_campaign(reviewer)
    for email, (stage, right) in RATER_STAGES.items():
        profile = _bring_to_stage(User.objects.get(email=email), stage, reviewer, campaign)
        if right is not None and profile.status == ApplicationStatus.APPROVED:
            _take_test(profile, test, right)
