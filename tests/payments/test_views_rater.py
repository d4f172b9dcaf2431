"""The rater's earnings page: figures from the ledger, per-study rates, the earnings list with
rejections and appeals, payout history, and Stripe onboarding through the sandbox."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from crowdplatform.core.models import AuditEvent
from payments import ledger
from payments.earnings import (
    appeal_decide,
    bonus_grant,
    earning_reject,
    earnings_hold,
    earnings_release_due,
    floor_topups_run,
)
from payments.models import ConnectedAccount, Earning, EarningAppeal, EarningKind, EarningStatus, PayoutStatus
from payments.payouts import payout_batch_create
from tests.payments import sandbox_fixtures
from tests.payments.conftest import money_state
from tests.payments.test_payouts import onboarded

stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

EARNINGS = reverse("payments:earnings")
PAY, FEE = 25, 5  # the default study: 25 cents a task, a 20% platform fee


def figure(html: str, stat_id: str) -> str:
    """The number of a big figure (`<div class="stat" id=…><span class="stat-value">12.50 <span…`)."""
    match = re.search(rf'id="{stat_id}"><span class="stat-value">([^<]*)', html)
    assert match, f"no figure {stat_id}"
    return match.group(1).strip()


def figures(html: str) -> dict[str, str]:
    names = ("pending", "held", "available", "in-transit", "paid")
    return {name: figure(html, f"total-{name}") for name in names}


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.fixture
def rater_user(rater_profile):
    return rater_profile.user


@pytest.fixture
def study(make_live_study):
    return make_live_study(items=3)


# --- Figures --------------------------------------------------------------------------------------


def test_a_new_rater_sees_zero_figures_empty_states_and_the_set_up_button(client, rater_user):
    client.force_login(rater_user)

    page = client.get(EARNINGS)

    assert page.status_code == 200
    assert figures(page.text) == {
        "pending": "0.00",
        "held": "0.00",
        "available": "0.00",
        "in-transit": "0.00",
        "paid": "0.00",
    }
    for text in ("Nothing earned yet", "No earnings yet", "No payouts yet", "Set up payouts"):
        assert text in page.text
    assert f'action="{reverse("payments:connect_setup")}"' in page.text


def test_the_page_shows_exact_figures_that_agree_with_the_ledger(
    client, study, vote_as, rater_profile, rater_user, owner, organization
):
    # Two tasks of 2 minutes each, released after the review window; a third one still pending.
    vote_as(study, rater_profile, duration_s=120)
    vote_as(study, rater_profile, duration_s=120)
    assert earnings_release_due(now=timezone.now() + timedelta(hours=73)) == 2
    vote_as(study, rater_profile, duration_s=120)
    # 6 minutes at the 15.00/h floor is 1.50; task pay is 0.75, so the floor tops it up by 0.75 (pending).
    assert floor_topups_run() == 1
    bonus_grant(
        actor=owner,
        rater=rater_user,
        amount_cents=200,
        reason="Careful rationales on every task",
        idempotency_key="b1",
        study=study,
        organization=organization,
    )
    client.force_login(rater_user)

    page = client.get(EARNINGS)

    assert figures(page.text) == {
        "pending": "1.00",  # 0.25 task + 0.75 top-up
        "held": "0.00",
        "available": "2.50",  # 2 × 0.25 released + 2.00 bonus
        "in-transit": "0.00",
        "paid": "0.00",
    }
    assert ledger.balance(ledger.rater_pending(rater_user.pk, "usd")) == 100
    assert ledger.balance(ledger.rater_available(rater_user.pk, "usd")) == 250
    (row,) = page.context["studies"]
    assert (row.study_name, row.tasks, row.task_pay_cents, row.topups_cents, row.bonuses_cents) == (
        "Coding help",
        3,
        75,
        75,
        200,
    )
    assert (row.seconds, row.effective_cents_per_hour, row.floor_cents_per_hour) == (360.0, 1500, 1500)
    text = page.text
    for cell in (
        "<td>Coding help</td>",
        '<td class="num">3</td>',
        '<td class="num">0.75 USD</td>',
        '<td class="num">2.00 USD</td>',
        '<td class="num">6 min</td>',
        "15.00 USD/h",
        "at or above the floor",
    ):
        assert cell in text, cell
    # The earnings list: kind, amount, status, when it becomes available, the reasons.
    kinds = [(e.kind, e.status, e.amount_cents) for e, _ in page.context["rows"]]
    assert sorted(kinds) == sorted(
        [
            (EarningKind.TASK, EarningStatus.AVAILABLE, PAY),
            (EarningKind.TASK, EarningStatus.AVAILABLE, PAY),
            (EarningKind.TASK, EarningStatus.PENDING, PAY),
            (EarningKind.FLOOR_TOPUP, EarningStatus.PENDING, 75),
            (EarningKind.BONUS, EarningStatus.AVAILABLE, 200),
        ]
    )
    pending_task = Earning.objects.get(kind=EarningKind.TASK, status=EarningStatus.PENDING)
    assert f"Available from {timezone.localtime(pending_task.available_at):%Y-%m-%d %H:%M}" in text
    assert "Careful rationales on every task" in text
    assert "Fair-pay top-up" in text
    assert "so 0.75 is added." in text


def test_held_pay_shows_its_figure_and_the_reason(client, study, vote_as, rater_profile, rater_user, staff_user):
    vote_as(study, rater_profile)
    vote_as(study, rater_profile)
    earnings_hold(rater=rater_user, reason="Gold answers under review", actor=staff_user)
    client.force_login(rater_user)

    page = client.get(EARNINGS)

    assert figure(page.text, "total-held") == "0.50"
    assert figure(page.text, "total-pending") == "0.00"
    assert page.text.count("Gold answers under review") == 3  # under the figure and on both rows
    assert page.text.count("Held for quality review</span>") == 2


def test_the_rater_never_sees_system_names_or_other_raters(client, study, vote_as, rater_profile, make_rater):
    other = make_rater()
    vote_as(study, rater_profile)
    vote_as(study, other)
    client.force_login(rater_profile.user)

    page = client.get(EARNINGS)

    assert len(page.context["rows"]) == 1
    for hidden in ("sys-a", "sys-b", other.user.email):
        assert hidden not in page.text


def test_the_earnings_list_has_25_per_page(client, rater_user, staff_user):
    for n in range(26):
        bonus_grant(
            actor=staff_user,
            rater=rater_user,
            amount_cents=100 + n,
            reason=f"Bonus number {n:02d}",
            idempotency_key=f"k{n}",
        )
    client.force_login(rater_user)

    first = client.get(EARNINGS)
    second = client.get(EARNINGS + "?page=2")

    assert len(first.context["rows"]) == 25
    assert [earning.reason for earning, _ in second.context["rows"]] == ["Bonus number 00"]
    assert "Page 1 of 2" in first.text
    assert figure(first.text, "total-available") == f"{sum(100 + n for n in range(26)) / 100:.2f}"


# --- Rejections and appeals -----------------------------------------------------------------------


@pytest.fixture
def rejected(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    return earning_reject(
        earning=Earning.objects.get(), reason="The rationale was copied from another task.", actor=staff_user
    )


def test_rejected_pay_shows_the_reason_and_the_appeal_goes_to_staff_and_back(client, rejected, rater_user, staff_user):
    client.force_login(rater_user)
    page = client.get(EARNINGS)
    assert (
        '<p class="rejection"><strong>Rejected:</strong> The rationale was copied from another task.</p>' in page.text
    )
    assert reverse("payments:earning_appeal", args=[rejected.pk]) in page.text
    assert "Rejected so far: 0.25 USD" in page.text

    response = client.post(
        reverse("payments:earning_appeal", args=[rejected.pk]),
        {"message": "I wrote it myself; it is short."},
        follow=True,
    )

    assert messages_of(response) == ["Appeal sent. Staff will answer it here, on this page."]
    appeal = EarningAppeal.objects.get()
    assert (appeal.earning_id, appeal.rater_id, appeal.status) == (rejected.pk, rater_user.pk, "open")
    assert "Appeal open" in response.text
    assert reverse("payments:earning_appeal", args=[rejected.pk]) not in response.text

    appeal_decide(appeal=appeal, actor=staff_user, uphold=False, response="The same text appears on task 12.")
    page = client.get(EARNINGS)
    assert "Appeal denied" in page.text
    assert "The same text appears on task 12." in page.text

    again = client.post(reverse("payments:earning_appeal", args=[rejected.pk]), {"message": "Please look again."})
    assert again.status_code == 302
    assert EarningAppeal.objects.count() == 1


def test_an_appeal_without_a_message_is_refused_and_changes_nothing(client, rejected, rater_user):
    client.force_login(rater_user)
    before = money_state()

    response = client.post(reverse("payments:earning_appeal", args=[rejected.pk]), {"message": "  "}, follow=True)

    assert messages_of(response) == ["Say why the rejection is wrong. This field is required."]
    assert money_state() == before


def test_another_raters_earning_is_404_and_nothing_changes(client, rejected, make_rater):
    intruder = make_rater()
    client.force_login(intruder.user)
    before = money_state()

    response = client.post(reverse("payments:earning_appeal", args=[rejected.pk]), {"message": "Mine now"})

    assert response.status_code == 404
    assert money_state() == before
    assert client.post(reverse("payments:earning_appeal", args=[999_999]), {"message": "x"}).status_code == 404


def test_appeals_must_be_posted(client, rejected, rater_user):
    client.force_login(rater_user)
    assert client.get(reverse("payments:earning_appeal", args=[rejected.pk])).status_code == 405


# --- Access ---------------------------------------------------------------------------------------


def test_only_raters_see_the_earnings_page(client, owner):
    assert client.get(EARNINGS)["Location"].startswith(reverse("account_login"))
    client.force_login(owner)
    assert client.get(EARNINGS).status_code == 403
    assert client.post(reverse("payments:connect_setup")).status_code == 403
    assert client.get(reverse("payments:connect_return")).status_code == 403


# --- Stripe onboarding and payouts (sandbox) ------------------------------------------------------


def test_set_up_payouts_redirects_to_the_sandbox_onboarding_and_the_return_refreshes_the_status(
    client, stripe_sandbox, rater_user
):
    client.force_login(rater_user)

    response = client.post(reverse("payments:connect_setup"))

    assert response.status_code == 302
    assert response["Location"].startswith(f"{stripe_sandbox.base_url}/sandbox/onboard/")
    account = ConnectedAccount.objects.get(rater=rater_user)
    page = client.get(EARNINGS)
    assert "Not finished" in page.text
    assert "Continue setup" in page.text
    assert "date of birth (day)" in page.text
    assert "bank account for payouts" in page.text
    assert page.text.count("acceptance of Stripe&#x27;s terms") == 1  # date and ip: said once

    # The rater completes Stripe's onboarding and comes back: the status is asked from Stripe.
    stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=True)
    back = client.get(reverse("payments:connect_return"), follow=True)

    assert back.redirect_chain == [(EARNINGS, 302)]
    assert messages_of(back) == ["Payouts are set up: your available balance goes out with the next payout batch."]
    account.refresh_from_db()
    assert account.transfers_capability == "active"
    assert '<span class="badge badge-ok">Active</span>' in back.text
    assert "Set up payouts" not in back.text


def test_pending_verification_lists_what_stripe_still_checks(client, stripe_sandbox, rater_user):
    client.force_login(rater_user)
    client.post(reverse("payments:connect_setup"))
    account = ConnectedAccount.objects.get(rater=rater_user)
    stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=False)

    back = client.get(reverse("payments:connect_return"), follow=True)

    assert messages_of(back) == ["Thank you: Stripe is verifying your details. Payouts start once Stripe has finished."]
    assert "Pending verification" in back.text


def test_an_expired_link_gets_a_new_one(client, stripe_sandbox, rater_user):
    client.force_login(rater_user)
    first = client.post(reverse("payments:connect_setup"))["Location"]

    second = client.get(reverse("payments:connect_refresh"))

    assert second.status_code == 302
    assert second["Location"].startswith(f"{stripe_sandbox.base_url}/sandbox/onboard/")
    assert second["Location"] != first
    assert ConnectedAccount.objects.filter(rater=rater_user).count() == 1


def test_stripe_failing_is_a_message_never_a_500(client, stripe_sandbox, rater_user):
    client.force_login(rater_user)
    stripe_sandbox.fault(method="POST", path_prefix="/v1/accounts", kind="500")

    response = client.post(reverse("payments:connect_setup"), follow=True)

    assert response.status_code == 200
    assert messages_of(response) == [
        "Stripe could not be reached just now and nothing was changed. Please try again in a minute."
    ]
    assert not ConnectedAccount.objects.filter(rater=rater_user).exists()

    client.post(reverse("payments:connect_setup"))  # works again: an account exists now
    stripe_sandbox.fault(method="GET", path_prefix="/v1/accounts", kind="500")
    back = client.get(reverse("payments:connect_return"), follow=True)
    assert back.status_code == 200
    assert "We could not check your status with Stripe just now" in messages_of(back)[0]


def test_the_payout_history_and_paid_figure_after_a_batch(
    client, stripe_sandbox, rater_user, staff_user, django_capture_on_commit_callbacks
):
    onboarded(stripe_sandbox, rater_user)
    bonus_grant(
        actor=staff_user, rater=rater_user, amount_cents=1234, reason="Thanks for the pilot", idempotency_key="p"
    )
    stripe_sandbox.balance_add(amount=1234, currency="usd")
    with django_capture_on_commit_callbacks(execute=True):
        batch = payout_batch_create(trigger="staff", actor=staff_user)
    payout = batch.payouts.get()
    payout.refresh_from_db()
    assert payout.status in (PayoutStatus.SENT, PayoutStatus.PAID)
    client.force_login(rater_user)

    page = client.get(EARNINGS)

    assert figure(page.text, "total-paid") == "12.34"
    assert figure(page.text, "total-available") == "0.00"
    assert ledger.balance(ledger.rater_available(rater_user.pk, "usd")) == 0
    row = re.search(rf'<tr id="payout-{payout.pk}">(.*?)</tr>', page.text, re.S).group(1)
    assert "12.34 USD" in row
    assert payout.get_status_display() in row
    assert f"{timezone.localtime(payout.sent_at):%Y-%m-%d %H:%M}" in row
    assert "Active" in page.text


def test_a_refused_payout_is_explained_in_plain_words(
    client, stripe_sandbox, rater_user, staff_user, django_capture_on_commit_callbacks
):
    onboarded(stripe_sandbox, rater_user)
    bonus_grant(
        actor=staff_user, rater=rater_user, amount_cents=1500, reason="Thanks for the pilot", idempotency_key="p"
    )
    # Stripe's balance is short: the transfer is refused and the money returns to the rater.
    with django_capture_on_commit_callbacks(execute=True):
        payout_batch_create(trigger="staff", actor=staff_user)
    client.force_login(rater_user)

    page = client.get(EARNINGS)

    assert "Stripe could not send it to your account; the money is back in your available balance" in page.text
    assert "balance_insufficient" not in page.text
    assert figure(page.text, "total-available") == "15.00"
    assert AuditEvent.objects.filter(action="payout.fail").count() == 1
