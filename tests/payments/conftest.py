"""Shared fixtures for the payments tests: the Stripe sandbox, and a funded live study."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crowdplatform.raters.models import RaterProfile
from evaluations.models import Study, Vote
from tests.evaluations import conftest as evaluations_fixtures
from tests.payments import sandbox_fixtures

# Fixtures shared with the evaluations tests and the Stripe sandbox, bound here for tests/payments.
add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
rater_profile = evaluations_fixtures.rater_profile
upload = evaluations_fixtures.upload
stripe_sandbox = sandbox_fixtures.stripe_sandbox


@pytest.fixture
def vote_as(make_rater) -> Callable[..., Vote]:
    """Lease and vote as `rater` (a new rater by default), `duration_s` seconds after the lease."""
    from datetime import timedelta

    from evaluations.assignment import VoteInput, task_next, vote_submit

    def vote(study: Study, rater: RaterProfile | None = None, *, duration_s: float = 30, choice: str = "a") -> Vote:
        rater = rater or make_rater()
        task = task_next(rater=rater, study=study)
        assert task is not None, "no task for the rater"
        now = task.leased_at + timedelta(seconds=duration_s)
        made, created = vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice), now=now)
        assert created
        return made

    return vote


def money_state() -> dict[str, Any]:
    """Every count and balance that a refused request must leave alone."""
    from payments.models import Earning, EarningAppeal, LedgerAccount, LedgerEntry, LedgerTransaction

    return {
        "transactions": LedgerTransaction.objects.count(),
        "entries": LedgerEntry.objects.count(),
        "earnings": list(Earning.objects.order_by("id").values_list("id", "status", "amount_cents")),
        "appeals": list(EarningAppeal.objects.order_by("id").values_list("id", "status")),
        "balances": dict(LedgerAccount.objects.values_list("key", "balance_cents")),
    }
