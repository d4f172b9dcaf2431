"""What-if patches for benchmarks/task_cycle.py: proposed app changes, applied in memory only.

Nothing here is imported by the application. `task_cycle.py --what-if app` loads these into the gunicorn
workers (through benchmarks/task_cycle_gunicorn.py) and into its in-process profile, so the gain of each
proposed change is measured end to end before anyone edits the app. Each patch is the smallest version of
the change it stands for; the real change belongs in the app (see benchmarks/RESULTS.md). Delete a patch
once its change has landed.

- profile_join: the session's user is loaded with its rater profile (`select_related("rater_profile")` in the
                auth backend's get_user) and `rater_profile_of` reads `actor.rater_profile`: one SELECT fewer
                per task request.

Landed in 4da04e0 and so removed from here: `rater_id=task.rater_id` in `_vote_create`, System totals only
for the balanced policy, the shown responses loaded with the slot lock (no re-fetch in `task_view`), the
slot query walking the (pair_stat, votes, id) index backwards, and `_task_of` deferring response content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PATCHES = ("profile_join",)


def _profile_join(undo: list[Callable[[], None]]) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.backends import ModelBackend
    from django.core.exceptions import PermissionDenied

    from crowdplatform.accounts.models import AccountType, User
    from crowdplatform.raters.models import RaterProfile
    from evaluations import api

    user_model = get_user_model()
    original_get_user = ModelBackend.get_user
    original_profile_of = api.rater_profile_of

    def get_user(self: ModelBackend, user_id: Any) -> Any:
        try:
            user = user_model._default_manager.select_related("rater_profile").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def rater_profile_of(actor: Any) -> RaterProfile:
        if not isinstance(actor, User) or actor.account_type != AccountType.RATER:
            raise PermissionDenied("Only raters take tasks.")
        try:
            return actor.rater_profile
        except RaterProfile.DoesNotExist:
            raise PermissionDenied("Complete your rater application first.") from None

    ModelBackend.get_user = get_user  # type: ignore[method-assign]
    api.rater_profile_of = rater_profile_of
    undo.append(lambda: setattr(ModelBackend, "get_user", original_get_user))
    undo.append(lambda: setattr(api, "rater_profile_of", original_profile_of))


_APPLY = {"profile_join": _profile_join}


def apply(names: list[str] | tuple[str, ...]) -> Callable[[], None]:
    """Apply the named patches; returns a function that undoes them."""
    undo: list[Callable[[], None]] = []
    for name in names:
        _APPLY[name](undo)

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all
