"""Rater onboarding with Stripe Connect, against the sandbox (the real SDK over HTTP, never patched)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, reverse

import payments.urls
from crowdplatform.accounts.models import AccountType
from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.models import AuditEvent
from payments import stripe_api
from payments.connect import (
    account_status_apply,
    account_status_refresh,
    connected_account_ensure,
    onboarding_link_create,
)
from payments.models import ConnectedAccount, StripeEvent, StripeEventStatus
from tests.factories import UserFactory
from tests.payments import sandbox_fixtures
from tests.payments.webhook_delivery import deliver, deliver_all

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

URLCONF = "tests.payments.test_connect"


def _page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("")


# The onboarding pages (payments:connect_refresh / connect_return) are added to payments/urls.py with
# the rater pages; until they exist, tests that build links use this URLconf, which adds stand-ins.
_names = {getattr(pattern, "name", None) for pattern in payments.urls.urlpatterns}
_stand_ins = [
    path("payments/connect/refresh/", _page, name="connect_refresh"),
    path("payments/connect/return/", _page, name="connect_return"),
]
urlpatterns = [
    path(
        "",
        include(
            (
                payments.urls.urlpatterns + [stand_in for stand_in in _stand_ins if stand_in.name not in _names],
                "payments",
            )
        ),
    )
]


def _accounts_at_stripe(sandbox) -> int:
    return sandbox.state()["counts"].get("account", 0)


def _status(account: ConnectedAccount) -> tuple:
    account.refresh_from_db()
    return (
        account.details_submitted,
        account.payouts_enabled,
        account.charges_enabled,
        account.transfers_capability,
        account.requirements_due,
        account.disabled_reason,
    )


NEW_ACCOUNT_DUE = [
    "business_type",
    "external_account",
    "individual.dob.day",
    "individual.dob.month",
    "individual.dob.year",
    "individual.email",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


def test_ensure_creates_one_stripe_account_and_one_row_however_often_it_is_called(stripe_sandbox, rater):
    first = connected_account_ensure(rater=rater)
    second = connected_account_ensure(rater=rater)

    assert first.pk == second.pk
    assert ConnectedAccount.objects.filter(rater=rater).count() == 1
    assert _accounts_at_stripe(stripe_sandbox) == 1
    assert first.stripe_account_id.startswith("acct_")
    assert _status(first) == (False, False, False, "inactive", NEW_ACCOUNT_DUE, "requirements.past_due")
    stripe_account = stripe_api.account_retrieve(account_id=first.stripe_account_id)
    assert stripe_account["email"] == rater.email
    assert stripe_account["metadata"] == {"rater_id": str(rater.pk)}
    audits = AuditEvent.objects.filter(action="connect.account_create")
    assert [(a.actor_user_id, a.target_id, a.data) for a in audits] == [
        (rater.pk, str(first.pk), {"stripe_account_id": first.stripe_account_id})
    ]


def test_ensure_after_a_crash_between_stripe_and_our_insert_reuses_the_stripe_account(stripe_sandbox, rater):
    # The earlier attempt reached Stripe (same idempotency key) and died before recording it.
    earlier = stripe_api.account_create(
        email=rater.email, idempotency_key=f"connect-account:{rater.pk}", metadata={"rater_id": str(rater.pk)}
    )

    account = connected_account_ensure(rater=rater)

    assert account.stripe_account_id == earlier["id"]
    assert _accounts_at_stripe(stripe_sandbox) == 1


def test_ensure_refuses_a_client_user_and_asks_stripe_nothing(stripe_sandbox):
    client_user = UserFactory(account_type=AccountType.CLIENT)

    with pytest.raises(ApplicationError) as refused:
        connected_account_ensure(rater=client_user)

    assert refused.value.code == "not_a_rater"
    assert ConnectedAccount.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    assert _accounts_at_stripe(stripe_sandbox) == 0


@pytest.mark.urls(URLCONF)
def test_onboarding_through_the_sandbox_page_activates_transfers_from_the_webhook(
    stripe_sandbox, rater, client, settings
):
    url = onboarding_link_create(rater=rater)
    account = ConnectedAccount.objects.get(rater=rater)
    assert url.startswith(f"{stripe_sandbox.base_url}/sandbox/onboard/")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200

    submitted = requests.post(url, timeout=5, allow_redirects=False)

    assert submitted.status_code == 303
    assert submitted.headers["Location"] == settings.SITE_URL + reverse("payments:connect_return")
    # The redirect back proves nothing: until Stripe's event arrives the rater cannot be paid.
    assert _status(account) == (False, False, False, "inactive", NEW_ACCOUNT_DUE, "requirements.past_due")
    deliveries = stripe_sandbox.take_deliveries()
    assert [(d.connect, d.event_type) for d in deliveries] == [(True, "account.updated")]

    response = deliver(client, deliveries[0])

    assert response.status_code == 200
    assert _status(account) == (True, True, False, "active", [], "")
    assert account.can_receive_transfers
    event = StripeEvent.objects.get(event_id=deliveries[0].event_id)
    assert (event.status, event.account, event.error) == (
        StripeEventStatus.PROCESSED,
        account.stripe_account_id,
        "",
    )
    assert account.status_as_of == event.stripe_created
    audit = AuditEvent.objects.get(action="connect.account_status")
    assert audit.actor_label == "system"
    assert audit.data == {
        "details_submitted": True,
        "payouts_enabled": True,
        "transfers_capability": "active",
        "requirements_due": [],
        "disabled_reason": "",
    }


@pytest.mark.urls(URLCONF)
def test_onboarding_link_points_back_to_our_refresh_and_return_pages(stripe_sandbox, rater, settings):
    url = onboarding_link_create(rater=rater)
    token = url.rsplit("/", 1)[1]

    link = stripe_sandbox.engine.onboarding_link(token)

    assert link["refresh_url"] == settings.SITE_URL + reverse("payments:connect_refresh")
    assert link["return_url"] == settings.SITE_URL + reverse("payments:connect_return")
    assert link["account"] == ConnectedAccount.objects.get(rater=rater).stripe_account_id
    # A second link for the same rater: still one account.
    onboarding_link_create(rater=rater)
    assert _accounts_at_stripe(stripe_sandbox) == 1


def test_status_refresh_when_the_rater_returns_applies_stripes_current_state(stripe_sandbox, rater):
    account = connected_account_ensure(rater=rater)
    stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=False)

    refreshed = account_status_refresh(rater=rater)

    assert refreshed.pk == account.pk
    assert _status(account) == (True, False, False, "pending", [], "requirements.pending_verification")
    assert not account.can_receive_transfers


def test_status_refresh_without_an_account_does_nothing(stripe_sandbox, rater):
    assert account_status_refresh(rater=rater) is None
    assert ConnectedAccount.objects.count() == 0


def test_an_older_account_updated_arriving_late_is_ignored(stripe_sandbox, rater, client):
    account = connected_account_ensure(rater=rater)
    stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=False)  # pending verification
    stripe_sandbox.clock_advance(seconds=60)
    stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=True)  # verified, a minute later
    older, newer = stripe_sandbox.take_deliveries()
    assert (older.event_type, newer.event_type) == ("account.updated", "account.updated")

    deliver(client, newer)
    response = deliver(client, older)

    assert response.status_code == 200
    assert _status(account) == (True, True, False, "active", [], "")
    older_event = StripeEvent.objects.get(event_id=older.event_id)
    assert older_event.status == StripeEventStatus.IGNORED
    assert older_event.error == "Older than the account state already applied (delivered out of order)."
    assert account.status_as_of == StripeEvent.objects.get(event_id=newer.event_id).stripe_created


def test_account_updated_for_an_account_that_is_not_ours_is_ignored_and_says_so(stripe_sandbox, client):
    stranger = stripe_api.account_create(email="x@example.org", idempotency_key="someone-else", metadata={})
    stripe_sandbox.account_onboard(account_id=stranger["id"])

    (response,) = deliver_all(client, stripe_sandbox)

    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == StripeEventStatus.IGNORED
    assert event.error == f"Account {stranger['id']} is not a connected account of ours."
    assert ConnectedAccount.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_status_apply_directly_equal_time_applies_and_older_changes_nothing(stripe_sandbox, rater):
    account = connected_account_ensure(rater=rater)
    stripe_account = stripe_api.account_retrieve(account_id=account.stripe_account_id)
    at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    active = {
        **stripe_account,
        "details_submitted": True,
        "payouts_enabled": True,
        "capabilities": {"transfers": "active"},
        "requirements": {"currently_due": [], "disabled_reason": None},
    }
    restricted = {
        **active,
        "payouts_enabled": False,
        "capabilities": {"transfers": "inactive"},
        "requirements": {"currently_due": ["individual.id_number"], "disabled_reason": "requirements.past_due"},
    }

    account_status_apply(account=active, as_of=at)
    account_status_apply(account=restricted, as_of=at.replace(hour=11))  # older: ignored
    assert _status(account) == (True, True, False, "active", [], "")

    account_status_apply(account=restricted, as_of=at)  # same second: the later delivery wins
    assert _status(account) == (True, False, False, "inactive", ["individual.id_number"], "requirements.past_due")
    assert account_status_apply(account={**active, "id": "acct_unknown"}, as_of=at) is None
