"""payments.stripe_api against the sandbox: the real SDK over HTTP to 127.0.0.1, never patched."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
import stripe

from payments import stripe_api
from payments.sandbox import SandboxServer
from tests.payments import sandbox_fixtures
from tests.payments.sandbox_fixtures import CONNECT_WEBHOOK_SECRET, PLATFORM_WEBHOOK_SECRET

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

REPO = Path(__file__).resolve().parents[2]


def _onboarded_account(sandbox: SandboxServer, email: str = "rater@example.com") -> dict:
    account = stripe_api.account_create(email=email, idempotency_key=f"account:{email}", metadata={"rater": email})
    sandbox.account_onboard(account_id=account["id"])
    sandbox.take_deliveries()
    return account


def _transfer(destination: str, *, key: str = "payout:1", amount: int = 1000, group: str = "batch:1") -> dict:
    return stripe_api.transfer_create(
        amount=amount,
        currency="usd",
        destination=destination,
        idempotency_key=key,
        transfer_group=group,
        metadata={"batch": group},
    )


def _paid_session(sandbox: SandboxServer, *, amount: int = 5000, key: str = "topup:1") -> dict:
    session = stripe_api.checkout_session_create(
        amount=amount,
        currency="usd",
        product_name="Funds for Alpha Lab",
        client_reference_id="lab:1",
        metadata={"topup": "1"},
        success_url="http://127.0.0.1:8000/funds/done/?session={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:8000/funds/",
        idempotency_key=key,
    )
    sandbox.checkout_pay(session_id=session["id"], outcome="paid")
    return stripe_api.checkout_session_retrieve(session_id=session["id"])


def _only_plain(value: object) -> bool:
    if isinstance(value, dict):
        return type(value) is dict and all(_only_plain(item) for item in value.values())
    if isinstance(value, list):
        return all(_only_plain(item) for item in value)
    return not isinstance(value, stripe.StripeObject)


# --- Connect onboarding and signed webhooks ----------------------------------------------------------


def test_account_onboarding_activates_transfers_and_sends_a_signed_connect_event(stripe_sandbox, settings):
    account = stripe_api.account_create(
        email="rater@example.com", idempotency_key="account:rater:7", metadata={"rater_id": "7"}
    )
    assert _only_plain(account)
    assert account["id"].startswith("acct_")
    assert account["country"] == "US"
    assert account["email"] == "rater@example.com"
    assert account["metadata"] == {"rater_id": "7"}
    assert account["capabilities"] == {"transfers": "inactive"}
    assert (account["charges_enabled"], account["payouts_enabled"], account["details_submitted"]) == (
        False,
        False,
        False,
    )
    assert "external_account" in account["requirements"]["currently_due"]
    assert account["requirements"]["disabled_reason"] == "requirements.past_due"
    assert account["controller"]["stripe_dashboard"] == {"type": "express"}
    assert account["controller"]["fees"] == {"payer": "application"}
    assert account["controller"]["losses"] == {"payments": "application"}
    assert account["controller"]["requirement_collection"] == "stripe"

    link = stripe_api.account_link_create(
        account_id=account["id"], refresh_url="http://127.0.0.1:8000/refresh/", return_url="http://127.0.0.1:8000/back/"
    )
    assert link["object"] == "account_link"
    assert link["expires_at"] - link["created"] == 300
    assert link["url"].startswith(f"{stripe_sandbox.base_url}/sandbox/onboard/")

    page = requests.get(link["url"], allow_redirects=False, timeout=5)
    assert page.status_code == 200
    assert f"Sandbox onboarding for {account['id']}" in page.text
    assert "no bank data is entered" in page.text
    assert "Complete onboarding" in page.text
    assert "Leave unfinished" in page.text
    done = requests.post(link["url"], allow_redirects=False, timeout=5)
    assert (done.status_code, done.headers["Location"]) == (303, "http://127.0.0.1:8000/back/")

    account = stripe_api.account_retrieve(account_id=account["id"])
    assert account["capabilities"] == {"transfers": "active"}
    assert (account["payouts_enabled"], account["details_submitted"]) == (True, True)
    assert account["requirements"]["currently_due"] == []
    assert account["requirements"]["disabled_reason"] is None

    [delivery] = stripe_sandbox.take_deliveries()
    assert (delivery.event_type, delivery.connect) == ("account.updated", True)
    assert delivery.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", delivery.headers["Stripe-Signature"])
    signature = delivery.headers["Stripe-Signature"]
    event = stripe_api.event_construct(payload=delivery.payload, sig_header=signature, secret=CONNECT_WEBHOOK_SECRET)
    assert _only_plain(event)
    assert event["id"] == delivery.event_id
    assert event["type"] == "account.updated"
    assert event["account"] == account["id"]
    assert event["api_version"] == stripe_api.API_VERSION
    assert event["data"]["object"]["capabilities"] == {"transfers": "active"}
    assert event["data"]["previous_attributes"]["capabilities"] == {"transfers": "inactive"}

    with pytest.raises(stripe_api.SignatureError):
        stripe_api.event_construct(payload=delivery.payload, sig_header=signature, secret=PLATFORM_WEBHOOK_SECRET)
    tampered = delivery.payload.replace(b'"account.updated"', b'"account.updatez"')
    with pytest.raises(stripe_api.SignatureError, match="No signatures found"):
        stripe_api.event_construct(payload=tampered, sig_header=signature, secret=CONNECT_WEBHOOK_SECRET)
    stale = stripe_api.signature_header(
        payload=delivery.payload, secret=CONNECT_WEBHOOK_SECRET, timestamp=int(time.time()) - 301
    )
    with pytest.raises(stripe_api.SignatureError, match="tolerance"):
        stripe_api.event_construct(payload=delivery.payload, sig_header=stale, secret=CONNECT_WEBHOOK_SECRET)
    within = stripe_api.signature_header(
        payload=delivery.payload, secret=CONNECT_WEBHOOK_SECRET, timestamp=int(time.time()) - 290
    )
    assert (
        stripe_api.event_construct(payload=delivery.payload, sig_header=within, secret=CONNECT_WEBHOOK_SECRET)["id"]
        == (event["id"])
    )


def test_event_construct_refuses_missing_header_and_non_json(settings):
    with pytest.raises(stripe_api.SignatureError, match="No Stripe-Signature"):
        stripe_api.event_construct(payload=b"{}", sig_header="", secret="whsec_x")
    body = b"not json"
    header = stripe_api.signature_header(payload=body, secret="whsec_x")
    with pytest.raises(stripe_api.SignatureError, match="not a Stripe event"):
        stripe_api.event_construct(payload=body, sig_header=header, secret="whsec_x")
    with pytest.raises(stripe_api.SignatureError):
        stripe_api.event_construct(payload=b"{}", sig_header="garbage", secret="whsec_x")


def test_signature_header_matches_the_sandbox_hmac():
    from payments.sandbox.webhooks import signature_header

    payload = b'{"id": "evt_1", "object": "event"}'
    assert stripe_api.signature_header(payload=payload, secret="whsec_x", timestamp=1700000000) == signature_header(
        payload=payload, secret="whsec_x", timestamp=1700000000
    )


# --- transfers, idempotency and failures -----------------------------------------------------------


def test_transfer_replayed_with_the_same_key_creates_one_transfer(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=10_000, currency="usd")

    first = _transfer(account["id"])
    again = _transfer(account["id"])

    assert _only_plain(first)
    assert again == first
    assert first["id"].startswith("tr_")
    assert (first["amount"], first["currency"], first["destination"]) == (1000, "usd", account["id"])
    assert (first["transfer_group"], first["metadata"]) == ("batch:1", {"batch": "batch:1"})
    assert (first["amount_reversed"], first["reversed"]) == (0, False)
    assert first["balance_transaction"].startswith("txn_")
    assert [t["id"] for t in stripe_api.transfers_find(transfer_group="batch:1")] == [first["id"]]
    assert stripe_api.balance_retrieve()["available"] == [
        {"amount": 9000, "currency": "usd", "source_types": {"card": 9000}}
    ]
    deliveries = stripe_sandbox.take_deliveries()
    assert [(d.event_type, d.connect) for d in deliveries] == [("transfer.created", False), ("payout.paid", True)]
    payout_event = json.loads(deliveries[1].payload)
    assert payout_event["account"] == account["id"]
    assert payout_event["data"]["object"]["object"] == "payout"
    assert (payout_event["data"]["object"]["amount"], payout_event["data"]["object"]["status"]) == (1000, "paid")


def test_same_key_with_different_params_is_a_permanent_error(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=10_000, currency="usd")
    _transfer(account["id"], amount=1000)

    with pytest.raises(stripe_api.StripePermanentError) as caught:
        _transfer(account["id"], amount=1200)
    assert caught.value.code == "idempotency_error"
    assert caught.value.http_status == 400
    assert caught.value.request_id.startswith("req_")
    assert len(stripe_api.transfers_find(transfer_group="batch:1")) == 1


def test_insufficient_balance_is_permanent_with_stripes_code(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=500, currency="usd")
    with pytest.raises(stripe_api.StripePermanentError) as caught:
        _transfer(account["id"], amount=501)
    assert (caught.value.code, caught.value.http_status) == ("balance_insufficient", 400)
    assert "insufficient available funds" in caught.value.message
    assert stripe_api.transfers_find(transfer_group="batch:1") == []


def test_transfer_to_an_account_without_transfers_capability_is_refused(stripe_sandbox):
    account = stripe_api.account_create(email="new@example.com", idempotency_key="account:new", metadata={})
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    with pytest.raises(stripe_api.StripePermanentError) as caught:
        _transfer(account["id"])
    assert caught.value.code == "insufficient_capabilities_for_transfer"
    assert caught.value.param == "destination"
    with pytest.raises(stripe_api.StripePermanentError) as caught:
        _transfer("acct_doesnotexist000", key="payout:2")
    assert caught.value.code == "account_invalid"


@pytest.mark.parametrize(("kind", "status", "code"), [("500", 500, None), ("429", 429, "rate_limit")])
def test_stripe_failures_are_recoverable_and_do_no_work(stripe_sandbox, kind, status, code):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind=kind)

    with pytest.raises(stripe_api.StripeRecoverableError) as caught:
        _transfer(account["id"])
    assert (caught.value.http_status, caught.value.code) == (status, code)
    assert stripe_api.transfers_find(transfer_group="batch:1") == []
    assert stripe_sandbox.take_deliveries() == []

    # Nothing was stored under the key, so the retry does the work, once.
    transfer = _transfer(account["id"])
    assert [t["id"] for t in stripe_api.transfers_find(transfer_group="batch:1")] == [transfer["id"]]


def test_timeout_after_stripe_did_the_work_is_recovered_by_retrying_with_the_same_key(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="timeout", delay=3)

    started = time.monotonic()
    with pytest.raises(stripe_api.StripeRecoverableError) as caught:
        _transfer(account["id"])
    assert 1.5 < time.monotonic() - started < 3
    assert caught.value.http_status is None

    retried = _transfer(account["id"])
    assert [t["id"] for t in stripe_api.transfers_find(transfer_group="batch:1")] == [retried["id"]]
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 4000


def test_bad_api_key_is_a_permanent_401(stripe_sandbox, settings):
    settings.STRIPE_SECRET_KEY = "sk_live_not_for_the_sandbox"
    with pytest.raises(stripe_api.StripePermanentError) as caught:
        stripe_api.balance_retrieve()
    assert caught.value.http_status == 401
    assert caught.value.message.startswith("Invalid API Key provided")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "greater than or equal to 1"),
        (-5, "greater than or equal to 1"),
        (12.5, "Invalid integer: 12.5"),
        (100_000_000, "less than or equal to 99999999"),
    ],
)
def test_amounts_must_be_positive_integers_in_range(stripe_sandbox, amount, message):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    with pytest.raises(stripe_api.StripePermanentError, match=re.escape(message)) as caught:
        _transfer(account["id"], amount=amount)
    assert (caught.value.http_status, caught.value.code, caught.value.param) == (
        400,
        "parameter_invalid_integer",
        "amount",
    )


def test_reversal_takes_money_back_from_the_connected_account(stripe_sandbox):
    stripe_sandbox.configure(auto_connected_payouts=False)
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    transfer = _transfer(account["id"], amount=1000)
    assert stripe_api.balance_retrieve(account_id=account["id"])["available"][0]["amount"] == 1000
    stripe_sandbox.take_deliveries()

    reversal = stripe_api.transfer_reverse(transfer_id=transfer["id"], idempotency_key="reverse:1", amount=400)
    assert reversal["id"].startswith("trr_")
    assert (reversal["object"], reversal["amount"], reversal["transfer"]) == ("transfer_reversal", 400, transfer["id"])
    rest = stripe_api.transfer_reverse(transfer_id=transfer["id"], idempotency_key="reverse:2")
    assert rest["amount"] == 600

    [found] = stripe_api.transfers_find(transfer_group="batch:1")
    assert (found["amount_reversed"], found["reversed"]) == (1000, True)
    assert [r["id"] for r in found["reversals"]["data"]] == [rest["id"], reversal["id"]]
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 5000
    assert stripe_api.balance_retrieve(account_id=account["id"])["available"][0]["amount"] == 0
    deliveries = stripe_sandbox.take_deliveries()
    assert [d.event_type for d in deliveries] == ["transfer.reversed", "transfer.reversed"]
    assert json.loads(deliveries[-1].payload)["data"]["object"]["amount_reversed"] == 1000
    with pytest.raises(stripe_api.StripePermanentError):
        stripe_api.transfer_reverse(transfer_id=transfer["id"], idempotency_key="reverse:3")


def test_reversal_after_the_account_was_paid_out_fails(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=5000, currency="usd")
    transfer = _transfer(account["id"])
    with pytest.raises(stripe_api.StripePermanentError) as caught:
        stripe_api.transfer_reverse(transfer_id=transfer["id"], idempotency_key="reverse:1")
    assert caught.value.code == "balance_insufficient"
    assert stripe_api.transfers_find(transfer_group="batch:1")[0]["amount_reversed"] == 0


def test_transfers_list_follows_pages_past_one_hundred(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    stripe_sandbox.balance_add(amount=10_000, currency="usd")
    made = [_transfer(account["id"], key=f"payout:{n}", amount=10, group=f"batch:{n}")["id"] for n in range(102)]

    listed = [t["id"] for t in stripe_api.transfers_list()]
    assert listed == made[::-1]  # newest first, across two pages
    assert [t["type"] for t in stripe_api.balance_transactions_list()].count("transfer") == 102
    since = stripe_api.transfers_list(created_gte=int(time.time()) + 3600)
    assert list(since) == []


# --- Checkout ------------------------------------------------------------------------------------


def test_checkout_paid_by_card(stripe_sandbox):
    session = stripe_api.checkout_session_create(
        amount=5000,
        currency="usd",
        product_name="Funds for Alpha Lab",
        client_reference_id="lab:1",
        metadata={"topup": "1"},
        success_url="http://127.0.0.1:8000/funds/done/?session={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:8000/funds/",
        idempotency_key="topup:1",
        customer_email="owner@example.com",
    )
    assert session["id"].startswith("cs_test_")
    assert (session["status"], session["payment_status"], session["payment_intent"]) == ("open", "unpaid", None)
    assert (session["amount_total"], session["currency"], session["mode"]) == (5000, "usd", "payment")
    assert (session["client_reference_id"], session["metadata"]) == ("lab:1", {"topup": "1"})
    assert session["url"] == f"{stripe_sandbox.base_url}/sandbox/checkout/{session['id']}"

    page = requests.get(session["url"], allow_redirects=False, timeout=5)
    assert "Funds for Alpha Lab" in page.text
    assert "$50.00 USD" in page.text
    paid = requests.post(session["url"], data={"outcome": "paid"}, allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://127.0.0.1:8000/funds/done/?session={session['id']}"

    [delivery] = stripe_sandbox.take_deliveries()
    assert delivery.connect is False
    event = stripe_api.event_construct(
        payload=delivery.payload, sig_header=delivery.headers["Stripe-Signature"], secret=PLATFORM_WEBHOOK_SECRET
    )
    assert event["type"] == "checkout.session.completed"
    assert "account" not in event
    completed = event["data"]["object"]
    assert (completed["id"], completed["status"], completed["payment_status"]) == (session["id"], "complete", "paid")

    intent = stripe_api.payment_intent_retrieve(payment_intent_id=completed["payment_intent"])
    assert _only_plain(intent)
    assert (intent["status"], intent["amount"], intent["amount_received"]) == ("succeeded", 5000, 5000)
    assert intent["metadata"] == {"topup": "1"}
    charge = intent["latest_charge"]
    assert charge["id"].startswith("ch_")
    assert (charge["amount"], charge["payment_intent"], charge["metadata"]) == (5000, intent["id"], {"topup": "1"})
    txn = charge["balance_transaction"]
    assert (txn["type"], txn["reporting_category"], txn["source"]) == ("charge", "charge", charge["id"])
    assert (txn["amount"], txn["fee"], txn["net"]) == (5000, 175, 4825)  # 2.9% of 50.00 + 0.30
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 4825


def test_checkout_declined_leaves_the_session_open(stripe_sandbox):
    session = stripe_api.checkout_session_create(
        amount=5000,
        currency="usd",
        product_name="Funds",
        client_reference_id="lab:1",
        metadata={},
        success_url="http://127.0.0.1:8000/done/",
        cancel_url="http://127.0.0.1:8000/cancelled/",
        idempotency_key="topup:2",
    )
    declined = requests.post(session["url"], data={"outcome": "declined"}, allow_redirects=False, timeout=5)
    assert "Your card was declined" in declined.text
    assert "http://127.0.0.1:8000/cancelled/" in declined.text
    assert stripe_api.checkout_session_retrieve(session_id=session["id"])["status"] == "open"
    assert stripe_sandbox.take_deliveries() == []


def test_checkout_by_bank_transfer_settles_later_both_ways(stripe_sandbox):
    sessions = [
        stripe_api.checkout_session_create(
            amount=20_000,
            currency="usd",
            product_name="Funds",
            client_reference_id=f"lab:{n}",
            metadata={"topup": str(n)},
            success_url="http://127.0.0.1:8000/done/",
            cancel_url="http://127.0.0.1:8000/cancelled/",
            idempotency_key=f"topup:{n}",
        )
        for n in (1, 2)
    ]
    for session in sessions:
        stripe_sandbox.checkout_pay(session_id=session["id"], outcome="async")
    completed = [json.loads(d.payload) for d in stripe_sandbox.take_deliveries()]
    assert [(e["type"], e["data"]["object"]["payment_status"]) for e in completed] == [
        ("checkout.session.completed", "unpaid"),
        ("checkout.session.completed", "unpaid"),
    ]
    intent_id = completed[0]["data"]["object"]["payment_intent"]
    assert stripe_api.payment_intent_retrieve(payment_intent_id=intent_id)["status"] == "processing"

    stripe_sandbox.checkout_settle(session_id=sessions[0]["id"], success=True)
    stripe_sandbox.checkout_settle(session_id=sessions[1]["id"], success=False)
    settled = [json.loads(d.payload) for d in stripe_sandbox.take_deliveries()]
    assert [(e["type"], e["data"]["object"]["payment_status"]) for e in settled] == [
        ("checkout.session.async_payment_succeeded", "paid"),
        ("checkout.session.async_payment_failed", "unpaid"),
    ]
    assert stripe_api.checkout_session_retrieve(session_id=sessions[0]["id"])["payment_status"] == "paid"
    paid_intent = stripe_api.payment_intent_retrieve(payment_intent_id=intent_id)
    assert paid_intent["status"] == "succeeded"
    assert paid_intent["latest_charge"]["balance_transaction"]["net"] == 20_000 - 610
    failed_intent_id = settled[1]["data"]["object"]["payment_intent"]
    assert stripe_api.payment_intent_retrieve(payment_intent_id=failed_intent_id)["status"] == (
        "requires_payment_method"
    )
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 19_390


def test_dispute_debits_amount_and_fee_and_is_delivered(stripe_sandbox):
    session = _paid_session(stripe_sandbox)
    stripe_sandbox.take_deliveries()
    intent = stripe_api.payment_intent_retrieve(payment_intent_id=session["payment_intent"])

    dispute = stripe_sandbox.charge_dispute(charge_id=intent["latest_charge"]["id"])
    [delivery] = stripe_sandbox.take_deliveries()
    event = stripe_api.event_construct(
        payload=delivery.payload, sig_header=delivery.headers["Stripe-Signature"], secret=PLATFORM_WEBHOOK_SECRET
    )
    assert event["type"] == "charge.dispute.created"
    disputed = event["data"]["object"]
    assert disputed["id"] == dispute["id"]
    assert dispute["id"].startswith("du_")
    assert (disputed["amount"], disputed["charge"], disputed["payment_intent"]) == (
        5000,
        intent["latest_charge"]["id"],
        intent["id"],
    )
    assert (disputed["status"], disputed["reason"]) == ("needs_response", "fraudulent")
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 4825 - 5000 - 1500
    [txn, *_] = stripe_api.balance_transactions_list()
    assert (txn["type"], txn["reporting_category"], txn["amount"], txn["fee"], txn["net"]) == (
        "adjustment",
        "dispute",
        -5000,
        1500,
        -6500,
    )

    stripe_sandbox.dispute_close(dispute_id=dispute["id"], won=True)
    [closed] = stripe_sandbox.take_deliveries()
    closed_event = json.loads(closed.payload)
    assert (closed_event["type"], closed_event["data"]["object"]["status"]) == ("charge.dispute.closed", "won")
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 4825 - 1500


def test_events_list_filters_by_type_and_reads_connect_events_on_the_account(stripe_sandbox):
    account = _onboarded_account(stripe_sandbox)
    _paid_session(stripe_sandbox)
    stripe_sandbox.balance_add(amount=1000, currency="usd")
    _transfer(account["id"], amount=500)

    assert [e["type"] for e in stripe_api.events_list()] == ["transfer.created", "checkout.session.completed"]
    assert [e["type"] for e in stripe_api.events_list(types=["checkout.session.completed"])] == [
        "checkout.session.completed"
    ]
    assert list(stripe_api.events_list(created_gte=int(time.time()) + 60)) == []
    on_account = list(stripe_api.events_list(account_id=account["id"]))
    assert [e["type"] for e in on_account] == ["payout.paid", "account.updated"]
    assert {e["account"] for e in on_account} == {account["id"]}


# --- the client itself -------------------------------------------------------------------------------


def test_the_client_is_cached_per_settings(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    first = stripe_api._client()
    assert stripe_api._client() is first
    settings.STRIPE_TIMEOUT_SECONDS = 7
    assert stripe_api._client() is not first


def test_unreachable_stripe_is_recoverable(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    with pytest.raises(stripe_api.StripeRecoverableError) as caught:
        stripe_api.account_retrieve(account_id="acct_x")
    assert caught.value.http_status is None


@pytest.mark.parametrize(
    ("error", "recoverable"),
    [
        (stripe.APIConnectionError("network down"), True),
        (stripe.RateLimitError("slow down", http_status=429), True),
        (stripe.APIError("conflict", http_status=409), True),
        (stripe.APIError("bad gateway", http_status=502), True),
        (stripe.APIError("unknown", http_status=None), True),
        (stripe.InvalidRequestError("no such thing", "id", code="resource_missing", http_status=404), False),
        (stripe.CardError("declined", None, "card_declined", http_status=402), False),
        (stripe.AuthenticationError("bad key", http_status=401), False),
        (stripe.PermissionError("forbidden", http_status=403), False),
        (stripe.IdempotencyError("params differ", http_status=400), False),
    ],
)
def test_sdk_errors_are_sorted_by_what_to_do_next(error, recoverable):
    translated = stripe_api._translate(error)
    expected = stripe_api.StripeRecoverableError if recoverable else stripe_api.StripePermanentError
    assert type(translated) is expected
    assert translated.message == error.user_message


def test_only_stripe_api_imports_stripe():
    pattern = re.compile(r"^\s*(import stripe\b|from stripe\b)", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("crowdplatform", "evaluations", "payments", "benchmarks")
        for path in (REPO / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8")) and path != REPO / "payments" / "stripe_api.py"
    ]
    assert offenders == []
