from __future__ import annotations

from django.db import transaction

from crowdplatform.accounts.models import User
from crowdplatform.accounts.principals import Actor
from crowdplatform.core.audit import audit_record
from crowdplatform.raters.models import RaterProfile


@transaction.atomic
def rater_profile_create(*, user: User, actor: Actor) -> RaterProfile:
    """The user's rater profile, created on first call."""
    profile, created = RaterProfile.objects.get_or_create(user=user)
    if created:
        audit_record(actor=actor, action="rater_profile.create", target=profile)
    return profile
