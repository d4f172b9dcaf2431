"""Demo rater applications at a chosen stage, reached through the real domain functions."""

from __future__ import annotations

from crowdplatform.accounts.models import User
from crowdplatform.raters import services
from crowdplatform.raters.models import ApplicationStatus

DEMO_PROFILE = services.ProfileInput(
    display_name="",
    country="GB",
    timezone="Europe/London",
    years_of_experience=6,
    credentials="MSc; six years of technical writing.",
    languages=(("en", "native"), ("fr", "professional")),
    domain_slugs=("general", "software"),
)


def demo_rater_application_ensure(user: User, *, stage: str, reviewer: User) -> None:
    """Bring a demo rater's application to `stage` (draft, applied or approved); never backwards."""
    profile = services.rater_profile_create(user=user, actor=None)
    if profile.status != ApplicationStatus.DRAFT or stage == ApplicationStatus.DRAFT:
        return
    name = user.email.split("@")[0].capitalize()
    data = services.ProfileInput(**{**DEMO_PROFILE.__dict__, "display_name": name})
    services.rater_profile_update(profile=profile, data=data, actor=user)
    services.rater_application_submit(profile=profile, consent_terms=True, consent_pay_policy=True, actor=user)
    if stage == ApplicationStatus.APPROVED:
        services.rater_status_decide(profile=profile, decision="approve", actor=reviewer)
