"""The staff payouts console and the rater money page: platform totals, the next batch, failed and
pending payouts, holds, reconciliation, appeals, rejections, against the Stripe sandbox. The last
test plays the whole money flow through the three sides' pages and checks every figure against the
ledger."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from crowdplatform.accounts.models import AccountType
from payments import ledger
from payments.earnings import bonus_grant, earning_appeal, earning_reject, earnings_release_due, floor_topups_run
from payments.models import (
    AccountKind,
    AppealStatus,
    Earning,
    EarningKind,
    EarningStatus,
    Funding,
    Payout,
    PayoutBatch,
    PayoutHold,
    PayoutStatus,
    ReconciliationRun,
    ReconciliationStatus,
)
from payments.payouts import payout_batch_create, payout_hold
from payments.selectors import platform_totals
from tests.factories import UserFactory
from tests.payments import sandbox_fixtures
from tests.payments.conftest import money_state
from tests.payments.test_payouts import assert_ledger_ok, onboarded, rater_new
from tests.payments.webhook_delivery import deliver_all, stripe_platform_balance

stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

CONSOLE = reverse("payments:staff_payouts")
USD = "usd"


def figure(html: str, stat_id: str) -> str:
    match = re.search(rf'id="{stat_id}"><span class="stat-value">([^<]*)', html)
    assert match, f"no figure {stat_id}"
    return match.group(1).strip()


def dollars(cents: int) -> str:
    sign = "−" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def rater_page(rater) -> str:
    return reverse("payments:staff_rater_money", args=[rater.pk])


def staff_bonus(rater, staff_user, cents: int) -> Earning:
    earning, _ = bonus_grant(
        actor=staff_user,
        rater=rater,
        amount_cents=cents,
        reason="For the pilot study",
        idempotency_key=uuid.uuid4().hex,
    )
    return earning


CONSOLE_TOTALS = {
    "total-org-funds": AccountKind.ORG_FUNDS,
    "total-rater-pending": AccountKind.RATER_PENDING,
    "total-rater-available": AccountKind.RATER_AVAILABLE,
    "total-in-transit": AccountKind.PAYOUTS_IN_TRANSIT,
    "total-revenue": AccountKind.PLATFORM_REVENUE,
    "total-expense": AccountKind.PLATFORM_EXPENSE,
    "total-stripe-balance": AccountKind.STRIPE_BALANCE,
    "total-stripe-fees": AccountKind.STRIPE_FEES,
}


def console_totals(html: str) -> dict[str, str]:
    return {kind: figure(html, stat_id) for stat_id, kind in CONSOLE_TOTALS.items()}


# --- Access ---------------------------------------------------------------------------------------


def test_only_staff_open_the_console_and_its_actions(client, rater, owner):
    appeal_id = hold_id = payout_id = 1
    pages = [CONSOLE, rater_page(rater)]
    actions = [
        reverse("payments:staff_payout_run"),
        reverse("payments:staff_payout_retry", args=[payout_id]),
        reverse("payments:staff_payout_hold"),
        reverse("payments:staff_payout_hold_release", args=[hold_id]),
        reverse("payments:staff_reconcile"),
        reverse("payments:staff_appeal_decide", args=[appeal_id]),
        reverse("payments:staff_earning_reject", args=[rater.pk, 1]),
        reverse("payments:staff_earnings_hold", args=[rater.pk]),
        reverse("payments:staff_earnings_release", args=[rater.pk]),
        reverse("payments:staff_bonus", args=[rater.pk]),
    ]
    for url in pages:
        assert client.get(url)["Location"].startswith(reverse("account_login"))
    for user in (rater, owner):
        client.force_login(user)
        for url in pages:
            assert client.get(url).status_code == 403, url
        for url in actions:
            assert client.post(url, {"email": rater.email, "reason": "x" * 20}).status_code == 403, url
    assert not PayoutBatch.objects.exists()
    assert not PayoutHold.objects.exists()
    assert not ReconciliationRun.objects.exists()


def test_actions_must_be_posted(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse("payments:staff_payout_run")).status_code == 405
    assert client.get(reverse("payments:staff_reconcile")).status_code == 405


def test_the_console_starts_empty(client, staff_user):
    client.force_login(staff_user)

    page = client.get(CONSOLE)

    assert page.status_code == 200
    assert set(console_totals(page.text).values()) == {"0.00"}
    for text in (
        "No rater has money available",
        "No failed payouts.",
        "No payout is waiting to be sent.",
        "No rater's payouts are held.",
        "No reconciliation has run yet.",
        "No open appeals.",
        "No payout batch has run yet.",
    ):
        assert text in page.text, text


def test_the_staff_dashboard_and_nav_link_to_the_console(client, staff_user):
    client.force_login(staff_user)
    page = client.get(reverse("staff:dashboard"))
    assert page.text.count(f'href="{CONSOLE}"') == 2


def test_totals_and_the_preview_say_who_is_paid_and_why_others_are_not(
    client, stripe_sandbox, staff_user, organization, make_live_study, vote_as
):
    study = make_live_study(items=3, funds_cents=50_000)
    ready, below, not_set_up, held = (
        onboarded(stripe_sandbox),
        onboarded(stripe_sandbox),
        rater_new(),
        onboarded(stripe_sandbox),
    )
    staff_bonus(ready, staff_user, 1500)
    staff_bonus(below, staff_user, 999)
    staff_bonus(not_set_up, staff_user, 2000)
    staff_bonus(held, staff_user, 1200)
    payout_hold(rater=held, reason="Identity check", actor=staff_user)
    vote_as(study)  # pending pay and a platform fee
    client.force_login(staff_user)

    page = client.get(CONSOLE)

    expected = {kind: dollars(cents) for kind, cents in platform_totals().items()}
    assert console_totals(page.text) == expected
    assert console_totals(page.text)[AccountKind.ORG_FUNDS] == "499.70"
    assert console_totals(page.text)[AccountKind.RATER_PENDING] == "0.25"
    assert console_totals(page.text)[AccountKind.RATER_AVAILABLE] == "56.99"
    assert console_totals(page.text)[AccountKind.PLATFORM_REVENUE] == "0.05"
    assert console_totals(page.text)[AccountKind.PLATFORM_EXPENSE] == "56.99"
    assert "<strong>1 rater</strong> would be paid <strong>15.00 USD</strong>; 3 skipped." in page.text
    preview = page.text[page.text.index('id="preview"') : page.text.index('id="failed"')]
    assert re.search(
        rf"{ready.email}</a></td><td class=\"num\">15.00 USD</td><td class=\"num\">15.00 USD</td>", preview
    )
    assert "Below the 10.00 USD minimum." in preview
    assert "Has not set up a Stripe account for payouts." in preview
    assert "Payouts held by staff: Identity check" in preview
    holds = page.text[page.text.index('id="holds"') : page.text.index('id="reconciliation"')]
    assert held.email in holds
    assert "Identity check" in holds


def test_run_payout_batch_now_pays_and_the_rater_sees_it(
    client, stripe_sandbox, staff_user, django_capture_on_commit_callbacks
):
    rater = onboarded(stripe_sandbox)
    staff_bonus(rater, staff_user, 2500)
    stripe_sandbox.balance_add(amount=2500, currency=USD)
    client.force_login(staff_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:staff_payout_run"), follow=True)

    batch = PayoutBatch.objects.get()
    payout = batch.payouts.get()
    assert messages_of(response) == [f"Payout batch {batch.pk}: 1 payout totalling 25.00 USD, being sent now."]
    assert (batch.trigger, batch.created_by, payout.status, payout.amount_cents) == ("staff", staff_user, "sent", 2500)
    assert "Nobody would be paid now" in response.text
    assert f"<td>#{batch.pk}</td>" in response.text
    assert figure(response.text, "total-rater-available") == "0.00"
    client.force_login(rater)
    assert figure(client.get(reverse("payments:earnings")).text, "total-paid") == "25.00"

    client.force_login(staff_user)
    again = client.post(reverse("payments:staff_payout_run"), follow=True)
    assert messages_of(again) == [f"Payout batch {batch.pk + 1}: nobody could be paid now (see the preview for why)."]
    assert_ledger_ok()


def test_a_failed_payout_is_listed_and_retried(client, stripe_sandbox, staff_user, django_capture_on_commit_callbacks):
    rater = onboarded(stripe_sandbox)
    staff_bonus(rater, staff_user, 1500)
    with django_capture_on_commit_callbacks(execute=True):
        failed = payout_batch_create(trigger="staff", actor=staff_user).payouts.get()  # Stripe's balance is short
    failed.refresh_from_db()
    assert failed.status == PayoutStatus.FAILED
    client.force_login(staff_user)

    page = client.get(CONSOLE)

    row = re.search(rf'<tr id="payout-{failed.pk}">(.*?)</tr>', page.text, re.S).group(1)
    assert "15.00 USD" in row
    assert rater.email in row
    assert "back in available" in row
    assert "Stripe refused the transfer: You have insufficient available funds" in row
    assert reverse("payments:staff_payout_retry", args=[failed.pk]) in row

    stripe_sandbox.balance_add(amount=1500, currency=USD)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:staff_payout_retry", args=[failed.pk]), follow=True)

    new = Payout.objects.exclude(pk=failed.pk).get()
    assert messages_of(response) == [f"Payout {failed.pk} retried as payout {new.pk} of 15.00 USD, being sent now."]
    new.refresh_from_db()
    assert new.status == PayoutStatus.SENT
    # Retrying again: nothing left to pay, said plainly.
    again = client.post(reverse("payments:staff_payout_retry", args=[failed.pk]), follow=True)
    assert messages_of(again) == ["Cannot pay this rater now: No money is available to pay."]
    assert Payout.objects.count() == 2
    assert_ledger_ok()


def test_pending_payouts_show_attempts_and_the_last_error(client, stripe_sandbox, staff_user):
    rater = onboarded(stripe_sandbox)
    staff_bonus(rater, staff_user, 1500)
    stripe_sandbox.balance_add(amount=1500, currency=USD)
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="429")
    from payments.payouts import payout_send

    payout = payout_batch_create(trigger="staff", actor=staff_user).payouts.get()
    payout = payout_send(payout_id=payout.pk)
    client.force_login(staff_user)

    page = client.get(CONSOLE)

    row = re.search(rf'<tr id="payout-{payout.pk}">(.*?)</tr>', page.text, re.S).group(1)
    assert '<td class="num">1</td>' in row
    assert f"{timezone.localtime(payout.next_attempt_at):%Y-%m-%d %H:%M:%S}" in row
    assert "Attempt 1:" in row


def test_hold_and_release_a_raters_payouts(client, stripe_sandbox, staff_user):
    rater = onboarded(stripe_sandbox)
    staff_bonus(rater, staff_user, 1500)
    client.force_login(staff_user)

    held = client.post(
        reverse("payments:staff_payout_hold"), {"email": rater.email.upper(), "reason": "Chargeback risk"}, follow=True
    )

    hold = PayoutHold.objects.get()
    assert (hold.rater, hold.reason, hold.created_by, hold.released_at) == (rater, "Chargeback risk", staff_user, None)
    assert messages_of(held) == [f"Payouts to {rater.email} are held until released; their earnings keep accruing."]
    assert "Payouts held by staff: Chargeback risk" in held.text
    twice = client.post(reverse("payments:staff_payout_hold"), {"email": rater.email, "reason": "Again"}, follow=True)
    assert messages_of(twice) == ["This rater's payouts are already held."]
    client.force_login(rater)
    assert "Payouts to you are paused while staff review your account." in client.get(reverse("payments:earnings")).text

    client.force_login(staff_user)
    no_note = client.post(reverse("payments:staff_payout_hold_release", args=[hold.pk]), {"note": ""}, follow=True)
    assert messages_of(no_note) == ["Hold not released: say why it is released."]
    released = client.post(
        reverse("payments:staff_payout_hold_release", args=[hold.pk]),
        {"note": "Cleared", "next": rater_page(rater)},
        follow=True,
    )
    hold.refresh_from_db()
    assert (hold.released_by, hold.release_note) == (staff_user, "Cleared")
    assert released.redirect_chain == [(rater_page(rater), 302)]
    assert messages_of(released) == [f"Released the hold on {rater.email}: they are paid from the next batch."]


def test_holding_an_unknown_email_or_without_a_reason_is_refused(client, staff_user, owner):
    client.force_login(staff_user)
    for data, problem in [
        ({"email": "nobody@example.org", "reason": "Fraud"}, "No rater has this email address."),
        ({"email": owner.email, "reason": "Fraud"}, "No rater has this email address."),
        ({"email": "", "reason": "Fraud"}, "This field is required."),
        ({"email": "x@example.org", "reason": ""}, "No rater has this email address. This field is required."),
    ]:
        response = client.post(reverse("payments:staff_payout_hold"), data, follow=True)
        assert messages_of(response) == [f"Payouts not held: {problem}"]
    assert not PayoutHold.objects.exists()


def test_redirects_stay_on_the_console(client, staff_user, rater):
    client.force_login(staff_user)
    response = client.post(
        reverse("payments:staff_payout_hold"),
        {"email": rater.email, "reason": "Review", "next": "https://evil.example/staff/payouts/"},
    )
    assert response["Location"] == CONSOLE


def test_reconcile_now_reports_ok_then_every_mismatch(
    client, stripe_sandbox, staff_user, organization, owner, django_capture_on_commit_callbacks
):
    # A top-up through the sandbox checkout: the ledger and Stripe agree.
    client.force_login(owner)
    client.post(reverse("payments:billing_fund", args=[organization.slug]), {"amount": "100"})
    funding = Funding.objects.get()
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_all(client, stripe_sandbox)
    client.force_login(staff_user)

    ok = client.post(reverse("payments:staff_reconcile"), follow=True)

    run = ReconciliationRun.objects.get()
    assert messages_of(ok) == [f"Reconciliation {run.pk}: the ledger and Stripe agree."]
    assert ok.redirect_chain == [(CONSOLE + "#reconciliation", 302)]
    assert "Everything matches" in ok.text

    stripe_sandbox.balance_add(amount=500, currency=USD)  # money at Stripe the ledger does not know of
    mismatched = client.post(reverse("payments:staff_reconcile"), follow=True)

    run = ReconciliationRun.objects.first()
    assert run.status == ReconciliationStatus.MISMATCHES
    assert messages_of(mismatched) == [f"Reconciliation {run.pk}: 1 mismatch found."]
    row = re.search(r"<tr><td class=\"nowrap\"><code>balance</code></td>(.*?)</tr>", mismatched.text, re.S).group(1)
    assert "<code>stripe_balance:usd</code>" in row
    assert re.findall(r'<td class="num">(.*?)</td>', row) == ["96.80 USD", "101.80 USD"]
    assert "a difference of 5.00 USD" in row


def test_reconcile_when_stripe_is_down_says_so(client, stripe_sandbox, staff_user):
    stripe_sandbox.fault(method="GET", path_prefix="/v1/transfers", kind="500")
    client.force_login(staff_user)

    response = client.post(reverse("payments:staff_reconcile"), follow=True)

    assert response.status_code == 200
    run = ReconciliationRun.objects.get()
    assert run.status == ReconciliationStatus.ERROR
    assert messages_of(response)[0].startswith(f"Reconciliation {run.pk} could not complete: Stripe could not be")


# --- Quality review: reject, appeal, hold earnings ------------------------------------------------


@pytest.fixture
def voted(make_live_study, vote_as, rater_profile):
    study = make_live_study(items=3)
    vote_as(study, rater_profile)
    return rater_profile.user, Earning.objects.get()


def test_staff_reject_pay_and_the_rater_sees_the_reason(client, staff_user, voted, organization):
    rater, earning = voted
    funds_before = ledger.balance(ledger.org_funds(organization.pk, USD))
    client.force_login(staff_user)
    page = client.get(rater_page(rater))
    assert reverse("payments:staff_earning_reject", args=[rater.pk, earning.pk]) in page.text

    response = client.post(
        reverse("payments:staff_earning_reject", args=[rater.pk, earning.pk]),
        {"reason": "Answered in 2 seconds without reading."},
        follow=True,
    )

    earning.refresh_from_db()
    assert (earning.status, earning.rejection_reason) == (
        EarningStatus.REJECTED,
        "Answered in 2 seconds without reading.",
    )
    assert messages_of(response) == [
        "Rejected 0.25 USD: the client's funds get it back and the rater sees the reason and may appeal."
    ]
    assert ledger.balance(ledger.org_funds(organization.pk, USD)) == funds_before + 30
    client.force_login(rater)
    rater_view = client.get(reverse("payments:earnings"))
    assert "<strong>Rejected:</strong> Answered in 2 seconds without reading." in rater_view.text
    assert figure(rater_view.text, "total-pending") == "0.00"


def test_a_rejection_needs_a_reason_and_only_pending_task_pay_can_be_rejected(client, staff_user, voted):
    rater, earning = voted
    client.force_login(staff_user)
    before = money_state()

    short = client.post(
        reverse("payments:staff_earning_reject", args=[rater.pk, earning.pk]), {"reason": "bad"}, follow=True
    )

    assert messages_of(short) == ["Pay not rejected: Give a reason of at least 10 characters."]
    assert money_state() == before
    bonus = staff_bonus(rater, staff_user, 100)
    before = money_state()
    refused = client.post(
        reverse("payments:staff_earning_reject", args=[rater.pk, bonus.pk]),
        {"reason": "Not deserved at all"},
        follow=True,
    )
    assert messages_of(refused) == ["Only task pay can be rejected."]
    assert money_state() == before
    other = UserFactory(account_type=AccountType.RATER)
    assert (
        client.post(
            reverse("payments:staff_earning_reject", args=[other.pk, earning.pk]), {"reason": "x" * 12}
        ).status_code
        == 404
    )


def test_open_appeals_are_decided_from_the_console(client, staff_user, voted):
    rater, earning = voted
    earning_reject(earning=earning, reason="Rationale copied from elsewhere", actor=staff_user)
    appeal = earning_appeal(earning=earning, rater=rater, message="I wrote it myself.")
    client.force_login(staff_user)
    page = client.get(CONSOLE)
    case = page.text[page.text.index(f'id="appeal-{appeal.pk}"') :]
    assert rater.email in case
    assert "Rationale copied from elsewhere" in case
    assert "I wrote it myself." in case
    before = money_state()

    refused = client.post(
        reverse("payments:staff_appeal_decide", args=[appeal.pk]), {"decision": "uphold", "response": "ok"}, follow=True
    )
    assert messages_of(refused) == ["Appeal not decided: Give a reason of at least 10 characters."]
    assert money_state() == before

    upheld = client.post(
        reverse("payments:staff_appeal_decide", args=[appeal.pk]),
        {"decision": "uphold", "response": "Checked: your text is original."},
        follow=True,
    )

    appeal.refresh_from_db()
    earning.refresh_from_db()
    assert (appeal.status, appeal.decided_by, earning.status) == (
        AppealStatus.UPHELD,
        staff_user,
        EarningStatus.AVAILABLE,
    )
    assert messages_of(upheld) == [f"Appeal {appeal.pk} upheld: the pay is reinstated; the rater sees why."]
    assert "No open appeals." in upheld.text
    twice = client.post(
        reverse("payments:staff_appeal_decide", args=[appeal.pk]),
        {"decision": "deny", "response": "Changed my mind."},
        follow=True,
    )
    assert messages_of(twice) == ["This appeal was already decided."]
    client.force_login(rater)
    rater_view = client.get(reverse("payments:earnings"))
    assert "Appeal upheld: pay reinstated" in rater_view.text
    assert "Checked: your text is original." in rater_view.text
    assert figure(rater_view.text, "total-available") == "0.25"


def test_hold_and_release_a_raters_pending_earnings(client, staff_user, voted):
    rater, earning = voted
    client.force_login(staff_user)

    held = client.post(
        reverse("payments:staff_earnings_hold", args=[rater.pk]), {"reason": "Gold accuracy under review"}, follow=True
    )

    earning.refresh_from_db()
    assert (earning.status, earning.hold_reason) == (EarningStatus.HELD, "Gold accuracy under review")
    assert messages_of(held) == ["Held 1 pending earning for quality review."]
    assert figure(held.text, "total-held") == "0.25"

    released = client.post(reverse("payments:staff_earnings_release", args=[rater.pk]), {"note": "Fine"}, follow=True)

    earning.refresh_from_db()
    assert earning.status == EarningStatus.PENDING
    assert messages_of(released) == ["Released 1 held earning: they become available when their review window ends."]
    earnings_release_due(now=timezone.now() + timedelta(hours=73))
    earning.refresh_from_db()
    assert earning.status == EarningStatus.AVAILABLE


def test_a_staff_bonus_is_granted_once_however_often_it_is_posted(client, staff_user, rater):
    client.force_login(staff_user)
    key = client.get(rater_page(rater)).context["bonus_form"].initial["idempotency_key"]
    data = {"amount": "5.00", "reason": "Helped test the new rubric", "idempotency_key": key}

    first = client.post(reverse("payments:staff_bonus", args=[rater.pk]), data, follow=True)
    second = client.post(reverse("payments:staff_bonus", args=[rater.pk]), data, follow=True)

    assert messages_of(first) == ["Bonus of 5.00 USD granted; it is available at once."]
    assert messages_of(second) == ["This bonus of 5.00 USD was already granted; it is paid once."]
    bonus = Earning.objects.get()
    assert (bonus.kind, bonus.amount_cents, bonus.organization_id, bonus.granted_by) == (
        EarningKind.BONUS,
        500,
        None,
        staff_user,
    )
    assert ledger.balance(ledger.platform_expense(USD)) == 500
    bad = client.post(reverse("payments:staff_bonus", args=[rater.pk]), {**data, "amount": "5.005"}, follow=True)
    assert messages_of(bad) == ["No bonus granted: Use at most two decimals: amounts are in whole cents."]
    assert Earning.objects.count() == 1


def test_the_rater_money_page_is_only_for_raters(client, staff_user, owner):
    client.force_login(staff_user)
    assert client.get(rater_page(owner)).status_code == 404


# --- Done when: every figure on the three sides agrees with the ledger ----------------------------


def test_the_whole_money_flow_through_the_pages_agrees_with_the_ledger_and_stripe(
    client,
    stripe_sandbox,
    organization,
    owner,
    staff_user,
    make_live_study,
    vote_as,
    make_rater,
    django_capture_on_commit_callbacks,
):
    # The client funds 100.00 through the billing page and the sandbox checkout (Stripe keeps 3.20).
    client.force_login(owner)
    client.post(reverse("payments:billing_fund", args=[organization.slug]), {"amount": "100.00"})
    funding = Funding.objects.get()
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_all(client, stripe_sandbox)
    study = make_live_study(items=3, funds_cents=0)
    # Raters set up payouts through their page and the sandbox's onboarding.
    slow, quick = make_rater(), make_rater()
    for profile in (slow, quick):
        client.force_login(profile.user)
        client.post(reverse("payments:connect_setup"))
        account = profile.user.connected_account
        stripe_sandbox.account_onboard(account_id=account.stripe_account_id, complete=True)
        client.get(reverse("payments:connect_return"))
    # They work: the slow rater's 10 minutes need a 1.75 top-up to reach 15.00/h.
    for _ in range(3):
        vote_as(study, slow, duration_s=200)
        vote_as(study, quick, duration_s=20)
    assert floor_topups_run() == 1
    earnings_release_due(now=timezone.now() + timedelta(hours=73))
    # The client rewards the slow rater, staff the quick one.
    client.force_login(owner)
    page = client.get(reverse("payments:billing", args=[organization.slug]))
    key = page.context["bonus_form"].initial["idempotency_key"]
    from payments.selectors import rater_pseudonym

    client.post(
        reverse("payments:billing_bonus", args=[organization.slug]),
        {
            "study": study.pk,
            "rater": rater_pseudonym(study_id=study.pk, rater_user_id=slow.user_id),
            "amount": "10",
            "reason": "Thorough rationales",
            "idempotency_key": key,
        },
    )
    client.force_login(staff_user)
    key = client.get(rater_page(quick.user)).context["bonus_form"].initial["idempotency_key"]
    client.post(
        reverse("payments:staff_bonus", args=[quick.user_id]),
        {"amount": "10", "reason": "Pilot tester thanks", "idempotency_key": key},
    )
    # Staff run the batch; Stripe's events come back; staff reconcile.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("payments:staff_payout_run"))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_all(client, stripe_sandbox)
    reconciled = client.post(reverse("payments:staff_reconcile"), follow=True)
    assert ReconciliationRun.objects.get().status == ReconciliationStatus.OK, reconciled.text

    slow_paid = 3 * 25 + 175 + 1000  # 12.50
    quick_paid = 3 * 25 + 1000  # 10.75
    assert {p.rater_id: (p.amount_cents, p.status) for p in Payout.objects.all()} == {
        slow.user_id: (slow_paid, PayoutStatus.PAID),
        quick.user_id: (quick_paid, PayoutStatus.PAID),
    }
    # Raters' pages.
    for profile, paid in ((slow, slow_paid), (quick, quick_paid)):
        client.force_login(profile.user)
        text = client.get(reverse("payments:earnings")).text
        assert figure(text, "total-paid") == dollars(paid)
        for stat in ("total-pending", "total-held", "total-available", "total-in-transit"):
            assert figure(text, stat) == "0.00"
        assert ledger.balance(ledger.rater_pending(profile.user_id, USD)) == 0
        assert ledger.balance(ledger.rater_available(profile.user_id, USD)) == 0
    # The client's page.
    client.force_login(owner)
    billing = client.get(reverse("payments:billing", args=[organization.slug])).text
    funds = ledger.balance(ledger.org_funds(organization.pk, USD))
    assert funds == 10_000 - 6 * 30 - 175 - 1000
    assert figure(billing, "funds-balance") == dollars(funds) == "86.45"
    assert "<li>Funded in total <strong>100.00 USD</strong></li>" in billing
    assert "<li>spent on studies <strong>13.55 USD</strong></li>" in billing
    # The staff console.
    client.force_login(staff_user)
    console = client.get(CONSOLE).text
    totals = platform_totals()
    assert console_totals(console) == {kind: dollars(cents) for kind, cents in totals.items()}
    assert (
        totals[AccountKind.STRIPE_BALANCE]
        == 10_000 - 320 - slow_paid - quick_paid
        == stripe_platform_balance(stripe_sandbox)
    )
    assert (totals[AccountKind.PLATFORM_REVENUE], totals[AccountKind.STRIPE_FEES]) == (30, 320)
    assert (totals[AccountKind.PLATFORM_EXPENSE], totals[AccountKind.RATER_AVAILABLE]) == (1000, 0)
    assert "Everything matches" in console
    assert_ledger_ok()
