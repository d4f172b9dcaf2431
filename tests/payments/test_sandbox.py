"""The Stripe sandbox itself: wire format, idempotency, lists, pages, control endpoints, delivery, command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from payments import stripe_api
from payments.management.commands import stripe_sandbox as command_module
from payments.sandbox import SandboxServer
from payments.sandbox.control import SandboxControl, SandboxControlError, sandbox_reachable
from payments.sandbox.forms import FormError, parse_query
from tests.payments import sandbox_fixtures
from tests.payments.sandbox_fixtures import CONNECT_WEBHOOK_SECRET, PLATFORM_WEBHOOK_SECRET

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer sk_test_sandbox"}


def api(sandbox: SandboxServer, method: str, path: str, data: object = None, **headers: str) -> requests.Response:
    """A raw request to the sandbox's Stripe API, form-encoded like the SDK's."""
    return requests.request(
        method, f"{sandbox.base_url}{path}", data=data, headers={**AUTH, **headers}, allow_redirects=False, timeout=5
    )


def paid_intent(sandbox: SandboxServer, *, amount: int = 5000) -> dict:
    session = stripe_api.checkout_session_create(
        amount=amount,
        currency="usd",
        product_name="Funds",
        client_reference_id="lab:1",
        metadata={"topup": "1"},
        success_url="http://127.0.0.1:8000/done/",
        cancel_url="http://127.0.0.1:8000/cancelled/",
        idempotency_key=f"topup:{time.monotonic_ns()}",
    )
    sandbox.checkout_pay(session_id=session["id"], outcome="paid")
    sandbox.take_deliveries()
    intent_id = stripe_api.checkout_session_retrieve(session_id=session["id"])["payment_intent"]
    return stripe_api.payment_intent_retrieve(payment_intent_id=intent_id)


def onboarded_account(sandbox: SandboxServer) -> str:
    account_id = api(sandbox, "POST", "/v1/accounts", {"capabilities[transfers][requested]": "true"}).json()["id"]
    sandbox.account_onboard(account_id=account_id)
    sandbox.take_deliveries()
    return account_id


class _Receiver:
    """A local webhook endpoint recording what it receives; answers with the scripted statuses."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[float, dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((time.monotonic(), dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"received {len(self.received)} of {count}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    endpoint = _Receiver([])
    yield endpoint
    endpoint.close()


# --- wire format ---------------------------------------------------------------------------------


def test_bracket_notation_is_parsed_into_nested_dicts_and_lists():
    parsed = parse_query(
        "amount=500&metadata[k]=v&metadata[0]=zero&expand[]=a&expand[]=b"
        "&line_items[0][price_data][unit_amount]=500&line_items[0][quantity]=1"
        "&line_items[1][quantity]=2&capabilities[transfers][requested]=true&types[0]=x&types[1]=y"
    )
    assert parsed == {
        "amount": "500",
        "metadata": {"k": "v", "0": "zero"},
        "expand": ["a", "b"],
        "line_items": [{"price_data": {"unit_amount": "500"}, "quantity": "1"}, {"quantity": "2"}],
        "capabilities": {"transfers": {"requested": "true"}},
        "types": ["x", "y"],
    }
    assert parse_query("line_items[][quantity]=1&line_items[][quantity]=2") == {
        "line_items": [{"quantity": "1"}, {"quantity": "2"}]
    }
    with pytest.raises(FormError):
        parse_query("a=1&a[b]=2")


def test_authentication_and_request_ids(stripe_sandbox):
    missing = requests.get(f"{stripe_sandbox.base_url}/v1/balance", timeout=5)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["message"].startswith("You did not provide an API key")
    assert missing.headers["Request-Id"].startswith("req_")

    live = api(stripe_sandbox, "GET", "/v1/balance", Authorization="Bearer sk_live_abcdefghijklmnop")
    assert live.status_code == 401
    assert live.json()["error"]["message"] == "Invalid API Key provided: sk_live_************mnop"

    ok = api(stripe_sandbox, "GET", "/v1/balance")
    assert ok.status_code == 200
    assert ok.json() == {
        "object": "balance",
        "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        "livemode": False,
        "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
    }
    assert ok.headers["Request-Id"] != missing.headers["Request-Id"]
    assert requests.get(f"{stripe_sandbox.base_url}/_sandbox/health", timeout=5).headers["Request-Id"]


def test_unknown_routes_and_parameters_are_refused(stripe_sandbox):
    route = api(stripe_sandbox, "GET", "/v1/customers")
    assert route.status_code == 404
    assert route.json()["error"]["message"] == "Unrecognized request URL (GET: /v1/customers)."
    unknown = api(stripe_sandbox, "POST", "/v1/accounts", {"colour": "blue"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        "message": "Received unknown parameter: colour",
        "param": "colour",
    }
    missing = api(stripe_sandbox, "GET", "/v1/transfers/tr_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert missing.json()["error"]["message"] == "No such transfer: 'tr_nope'"


# --- idempotency ---------------------------------------------------------------------------------


def test_idempotent_replay_returns_the_stored_response(stripe_sandbox):
    first = api(stripe_sandbox, "POST", "/v1/accounts", {"email": "a@example.com"}, **{"Idempotency-Key": "k1"})
    again = api(stripe_sandbox, "POST", "/v1/accounts", {"email": "a@example.com"}, **{"Idempotency-Key": "k1"})
    assert again.content == first.content
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert len(api(stripe_sandbox, "GET", "/v1/accounts").json()["data"]) == 1

    other = api(stripe_sandbox, "POST", "/v1/accounts", {"email": "b@example.com"}, **{"Idempotency-Key": "k1"})
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    elsewhere = api(
        stripe_sandbox, "POST", "/v1/account_links", {"email": "a@example.com"}, **{"Idempotency-Key": "k1"}
    )
    assert elsewhere.json()["error"]["type"] == "idempotency_error"


def test_validation_failures_are_not_stored_but_execution_failures_are(stripe_sandbox):
    destination = onboarded_account(stripe_sandbox)
    transfer = {"currency": "usd", "destination": destination}
    invalid = api(stripe_sandbox, "POST", "/v1/transfers", {**transfer, "amount": "x"}, **{"Idempotency-Key": "t1"})
    assert invalid.json()["error"]["code"] == "parameter_invalid_integer"
    broke = api(stripe_sandbox, "POST", "/v1/transfers", {**transfer, "amount": "700"}, **{"Idempotency-Key": "t1"})
    assert broke.json()["error"]["code"] == "balance_insufficient"

    stripe_sandbox.balance_add(amount=1000, currency="usd")
    # Stripe had started executing: the same key replays the stored error even though funds arrived.
    replay = api(stripe_sandbox, "POST", "/v1/transfers", {**transfer, "amount": "700"}, **{"Idempotency-Key": "t1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (400, "true")
    fresh = api(stripe_sandbox, "POST", "/v1/transfers", {**transfer, "amount": "700"}, **{"Idempotency-Key": "t2"})
    assert fresh.status_code == 200


def test_faults_apply_to_the_next_matching_requests_only(stripe_sandbox):
    stripe_sandbox.fault(method="GET", path_prefix="/v1/balance", kind="500", count=2)
    assert [api(stripe_sandbox, "GET", "/v1/balance").status_code for _ in range(3)] == [500, 500, 200]
    assert api(stripe_sandbox, "GET", "/v1/accounts").status_code == 200
    stripe_sandbox.fault(method="GET", path_prefix="/v1/balance", kind="429")
    limited = api(stripe_sandbox, "GET", "/v1/balance")
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "rate_limit")
    with pytest.raises(Exception, match="Invalid fault kind"):
        stripe_sandbox.fault(method="GET", path_prefix="/v1", kind="teapot")


# --- lists and expansion -------------------------------------------------------------------------


def test_lists_paginate_newest_first(stripe_sandbox):
    ids = [api(stripe_sandbox, "POST", "/v1/accounts", {"email": f"r{n}@example.com"}).json()["id"] for n in range(5)]
    newest_first = ids[::-1]

    page = api(stripe_sandbox, "GET", "/v1/accounts?limit=2").json()
    assert (page["object"], page["url"], page["has_more"]) == ("list", "/v1/accounts", True)
    assert [a["id"] for a in page["data"]] == newest_first[:2]
    page = api(stripe_sandbox, "GET", f"/v1/accounts?limit=2&starting_after={newest_first[1]}").json()
    assert ([a["id"] for a in page["data"]], page["has_more"]) == (newest_first[2:4], True)
    page = api(stripe_sandbox, "GET", f"/v1/accounts?limit=2&starting_after={newest_first[3]}").json()
    assert ([a["id"] for a in page["data"]], page["has_more"]) == (newest_first[4:], False)
    page = api(stripe_sandbox, "GET", f"/v1/accounts?limit=2&ending_before={newest_first[4]}").json()
    assert ([a["id"] for a in page["data"]], page["has_more"]) == (newest_first[2:4], True)
    assert len(api(stripe_sandbox, "GET", "/v1/accounts").json()["data"]) == 5  # default limit 10

    future = int(time.time()) + 60
    assert api(stripe_sandbox, "GET", f"/v1/accounts?created[gte]={future}").json()["data"] == []
    assert len(api(stripe_sandbox, "GET", f"/v1/accounts?created[lt]={future}").json()["data"]) == 5
    too_many = api(stripe_sandbox, "GET", "/v1/accounts?limit=101")
    assert (too_many.status_code, too_many.json()["error"]["param"]) == (400, "limit")
    bad_cursor = api(stripe_sandbox, "GET", "/v1/accounts?starting_after=acct_nope")
    assert bad_cursor.json()["error"]["param"] == "starting_after"


def test_expand_replaces_ids_with_objects(stripe_sandbox):
    intent_id = paid_intent(stripe_sandbox)["id"]
    plain = api(stripe_sandbox, "GET", f"/v1/payment_intents/{intent_id}").json()
    assert plain["latest_charge"].startswith("ch_")
    one = api(stripe_sandbox, "GET", f"/v1/payment_intents/{intent_id}?expand[]=latest_charge").json()
    assert one["latest_charge"]["id"] == plain["latest_charge"]
    assert one["latest_charge"]["balance_transaction"].startswith("txn_")
    two = api(stripe_sandbox, "GET", f"/v1/payment_intents/{intent_id}?expand[]=latest_charge.balance_transaction")
    assert two.json()["latest_charge"]["balance_transaction"]["fee"] == 175
    listed = api(stripe_sandbox, "GET", "/v1/charges?expand[]=data.balance_transaction").json()
    assert listed["data"][0]["balance_transaction"]["net"] == 4825
    wrong = api(stripe_sandbox, "GET", f"/v1/payment_intents/{intent_id}?expand[]=amount")
    assert wrong.json()["error"]["message"] == "This property cannot be expanded (amount)."


# --- money movements -----------------------------------------------------------------------------


def test_refunds_update_the_charge_and_are_delivered(stripe_sandbox):
    intent = paid_intent(stripe_sandbox)
    charge_id = intent["latest_charge"]["id"]

    partial = api(stripe_sandbox, "POST", "/v1/refunds", {"payment_intent": intent["id"], "amount": "2000"})
    assert partial.status_code == 200
    refund = partial.json()
    assert refund["id"].startswith("re_")
    assert (refund["amount"], refund["charge"], refund["payment_intent"], refund["status"]) == (
        2000,
        charge_id,
        intent["id"],
        "succeeded",
    )
    [delivery] = stripe_sandbox.take_deliveries()
    event = stripe_api.event_construct(
        payload=delivery.payload, sig_header=delivery.headers["Stripe-Signature"], secret=PLATFORM_WEBHOOK_SECRET
    )
    assert event["type"] == "charge.refunded"
    charge = event["data"]["object"]
    assert (charge["id"], charge["amount_refunded"], charge["refunded"]) == (charge_id, 2000, False)
    assert [r["id"] for r in charge["refunds"]["data"]] == [refund["id"]]

    too_much = api(stripe_sandbox, "POST", "/v1/refunds", {"charge": charge_id, "amount": "3001"})
    assert too_much.json()["error"]["code"] == "amount_too_large"
    rest = api(stripe_sandbox, "POST", "/v1/refunds", {"charge": charge_id}).json()
    assert rest["amount"] == 3000
    assert api(stripe_sandbox, "GET", f"/v1/charges/{charge_id}").json()["refunded"] is True
    again = api(stripe_sandbox, "POST", "/v1/refunds", {"charge": charge_id})
    assert again.json()["error"]["code"] == "charge_already_refunded"
    assert stripe_api.balance_retrieve()["available"][0]["amount"] == 4825 - 5000


def test_balance_and_balance_transactions_follow_charge_transfer_and_refund(stripe_sandbox):
    intent = paid_intent(stripe_sandbox)
    destination = onboarded_account(stripe_sandbox)
    transfer = api(
        stripe_sandbox, "POST", "/v1/transfers", {"amount": "1000", "currency": "usd", "destination": destination}
    )
    refund = api(stripe_sandbox, "POST", "/v1/refunds", {"charge": intent["latest_charge"]["id"], "amount": "500"})

    assert stripe_api.balance_retrieve()["available"] == [
        {"amount": 3325, "currency": "usd", "source_types": {"card": 3325}}
    ]
    txns = list(stripe_api.balance_transactions_list())
    assert [(t["type"], t["reporting_category"], t["amount"], t["fee"], t["net"], t["source"]) for t in txns] == [
        ("refund", "refund", -500, 0, -500, refund.json()["id"]),
        ("transfer", "transfer", -1000, 0, -1000, transfer.json()["id"]),
        ("charge", "charge", 5000, 175, 4825, intent["latest_charge"]["id"]),
    ]
    assert {t["status"] for t in txns} == {"available"}
    # The connected account paid its 1000 straight out to its bank.
    assert stripe_api.balance_retrieve(account_id=destination)["available"][0]["amount"] == 0
    [account] = stripe_sandbox.state()["accounts"]
    assert (account["balance"], account["paid_out"]) == ({"usd": 0}, {"usd": 1000})
    payouts = api(stripe_sandbox, "GET", "/v1/payouts", **{"Stripe-Account": destination}).json()["data"]
    assert [(p["amount"], p["status"]) for p in payouts] == [(1000, "paid")]
    by_type = api(stripe_sandbox, "GET", "/v1/balance_transactions?type=transfer").json()["data"]
    assert [t["amount"] for t in by_type] == [-1000]


def test_acting_as_a_connected_account_is_read_only(stripe_sandbox):
    destination = onboarded_account(stripe_sandbox)
    write = api(stripe_sandbox, "POST", "/v1/accounts", {}, **{"Stripe-Account": destination})
    assert write.status_code == 400
    stranger = api(stripe_sandbox, "GET", "/v1/balance", **{"Stripe-Account": "acct_stranger"})
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "account_invalid")


def test_checkout_session_parameters_are_checked(stripe_sandbox):
    line = {
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][product_data][name]": "Funds",
        "line_items[0][price_data][unit_amount]": "5000",
        "line_items[0][quantity]": "1",
    }
    base = {"mode": "payment", "success_url": "http://127.0.0.1:8000/done/", **line}
    assert api(stripe_sandbox, "POST", "/v1/checkout/sessions", base).status_code == 200
    errors = {
        "mode": {key: value for key, value in base.items() if key != "mode"},
        "line_items": {"mode": "payment", "success_url": "http://127.0.0.1:8000/done/"},
        "small": {**base, "line_items[0][price_data][unit_amount]": "49"},
        "integer": {**base, "line_items[0][price_data][unit_amount]": "5.5"},
        "currency": {**base, "line_items[0][price_data][currency]": "xyz"},
    }
    got = {
        name: api(stripe_sandbox, "POST", "/v1/checkout/sessions", data).json()["error"]
        for name, data in errors.items()
    }
    assert (got["mode"]["code"], got["mode"]["param"]) == ("parameter_missing", "mode")
    assert (got["line_items"]["code"], got["line_items"]["param"]) == ("parameter_missing", "line_items")
    assert got["small"]["code"] == "amount_too_small"
    assert got["small"]["message"] == "The Checkout Session's total amount due must add up to at least $0.50 USD."
    assert (got["integer"]["code"], got["integer"]["param"]) == (
        "parameter_invalid_integer",
        "line_items[0][price_data][unit_amount]",
    )
    assert got["currency"]["code"] == "invalid_currency"


# --- hosted pages --------------------------------------------------------------------------------


def _link(sandbox: SandboxServer, account_id: str) -> str:
    return stripe_api.account_link_create(
        account_id=account_id, refresh_url="http://127.0.0.1:8000/refresh/", return_url="http://127.0.0.1:8000/back/"
    )["url"]


def test_onboarding_links_are_single_use_and_expire(stripe_sandbox):
    account_id = api(stripe_sandbox, "POST", "/v1/accounts", {"capabilities[transfers][requested]": "true"}).json()[
        "id"
    ]
    used = _link(stripe_sandbox, account_id)
    requests.post(used, allow_redirects=False, timeout=5)
    revisit = requests.get(used, allow_redirects=False, timeout=5)
    assert (revisit.status_code, revisit.headers["Location"]) == (303, "http://127.0.0.1:8000/refresh/")

    expired = _link(stripe_sandbox, account_id)
    stripe_sandbox.clock_advance(seconds=301)
    late = requests.get(expired, allow_redirects=False, timeout=5)
    assert late.headers["Location"] == "http://127.0.0.1:8000/refresh/"
    assert requests.get(f"{stripe_sandbox.base_url}/sandbox/onboard/nope", timeout=5).status_code == 404


def test_leaving_onboarding_unfinished_changes_nothing(stripe_sandbox):
    account_id = api(stripe_sandbox, "POST", "/v1/accounts", {"capabilities[transfers][requested]": "true"}).json()[
        "id"
    ]
    link = _link(stripe_sandbox, account_id)
    left = requests.get(f"{link}/leave", allow_redirects=False, timeout=5)
    assert (left.status_code, left.headers["Location"]) == (303, "http://127.0.0.1:8000/back/")
    assert stripe_api.account_retrieve(account_id=account_id)["capabilities"] == {"transfers": "inactive"}
    assert stripe_sandbox.take_deliveries() == []


def test_onboarding_pending_verification(stripe_sandbox):
    account_id = api(stripe_sandbox, "POST", "/v1/accounts", {"capabilities[transfers][requested]": "true"}).json()[
        "id"
    ]
    account = stripe_sandbox.account_onboard(account_id=account_id, complete=False)
    assert (account["capabilities"], account["payouts_enabled"], account["details_submitted"]) == (
        {"transfers": "pending"},
        False,
        True,
    )
    assert account["requirements"]["disabled_reason"] == "requirements.pending_verification"
    [delivery] = stripe_sandbox.take_deliveries()
    assert json.loads(delivery.payload)["data"]["object"]["capabilities"] == {"transfers": "pending"}


# --- control endpoints and delivery ---------------------------------------------------------------


def test_control_client_drives_a_running_sandbox(stripe_sandbox):
    control = SandboxControl(stripe_sandbox.base_url)
    assert sandbox_reachable(stripe_sandbox.base_url)
    assert control.balance_add(amount=2500, currency="usd")["type"] == "adjustment"
    session = stripe_api.checkout_session_create(
        amount=5000,
        currency="usd",
        product_name="Funds",
        client_reference_id="lab:1",
        metadata={},
        success_url="http://127.0.0.1:8000/done/",
        cancel_url="http://127.0.0.1:8000/cancelled/",
        idempotency_key="topup:1",
    )
    assert control.checkout_pay(session_id=session["id"])["payment_status"] == "paid"
    [delivery] = control.take_deliveries()
    assert delivery["event_type"] == "checkout.session.completed"
    assert (
        stripe_api.event_construct(
            payload=delivery["payload"].encode(),
            sig_header=delivery["headers"]["Stripe-Signature"],
            secret=PLATFORM_WEBHOOK_SECRET,
        )["data"]["object"]["id"]
        == (session["id"])
    )

    state = control.state()
    assert state["platform_balance"] == {"usd": 2500 + 4825}
    assert (state["counts"]["checkout.session"], state["counts"]["charge"]) == (1, 1)
    assert [w["connect"] for w in state["webhooks"]] == [False, True]

    control.fault(method="GET", path_prefix="/v1/balance", kind="500")
    with pytest.raises(stripe_api.StripeRecoverableError):
        stripe_api.balance_retrieve()
    with pytest.raises(SandboxControlError) as caught:
        control.checkout_pay(session_id="cs_test_nope")
    assert caught.value.status == 404

    control.reset()
    state = control.state()
    assert (state["counts"], state["platform_balance"], len(state["webhooks"])) == ({}, {}, 2)


def test_sandbox_reachable_is_false_without_a_sandbox(receiver):
    assert sandbox_reachable("http://127.0.0.1:9") is False
    assert sandbox_reachable(receiver.url.removesuffix("/hook/")) is False  # something answers, not a sandbox


def test_auto_delivery_posts_signed_events_and_retries_failures(receiver):
    receiver.statuses = [500]
    sandbox = SandboxServer(auto_deliver=True)
    sandbox.start()
    try:
        sandbox.webhook_register(url=receiver.url, secret=CONNECT_WEBHOOK_SECRET, connect=True)
        sandbox.webhook_register(url=receiver.url, secret=PLATFORM_WEBHOOK_SECRET, connect=False)
        account_id = api(sandbox, "POST", "/v1/accounts", {"capabilities[transfers][requested]": "true"}).json()["id"]
        sandbox.account_onboard(account_id=account_id)
        receiver.wait_for(2)
    finally:
        sandbox.stop()
    (first_at, first_headers, first_body), (second_at, second_headers, second_body) = receiver.received
    assert first_body == second_body
    assert second_at - first_at >= 0.9  # retried after ~1 s
    assert first_headers["Content-Type"] == "application/json"
    event = stripe_api.event_construct(
        payload=second_body, sig_header=second_headers["Stripe-Signature"], secret=CONNECT_WEBHOOK_SECRET
    )
    assert (event["type"], event["account"], event["pending_webhooks"]) == ("account.updated", account_id, 1)
    assert [entry["status"] for entry in sandbox.state()["recent_deliveries"]] == [500, 200]


def test_deliver_posts_queued_deliveries_that_have_a_url(stripe_sandbox, receiver):
    stripe_sandbox.webhook_register(url=receiver.url, secret="whsec_dev", connect=False)
    stripe_sandbox.balance_add(amount=1000, currency="usd")
    destination = onboarded_account(stripe_sandbox)
    stripe_sandbox.take_deliveries()
    stripe_sandbox.configure(auto_connected_payouts=False)
    api(stripe_sandbox, "POST", "/v1/transfers", {"amount": "100", "currency": "usd", "destination": destination})

    results = stripe_sandbox.deliver()
    assert [(r["event_type"], r["status"]) for r in results] == [("transfer.created", 200)]
    [(_at, headers, body)] = receiver.received
    assert stripe_api.event_construct(payload=body, sig_header=headers["Stripe-Signature"], secret="whsec_dev")
    # The URL-less test endpoints' copies stay queued for take_deliveries().
    assert [d.event_type for d in stripe_sandbox.take_deliveries()] == ["transfer.created"]


# --- running it ------------------------------------------------------------------------------------


def test_command_refuses_to_start_with_real_stripe(settings):
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    with pytest.raises(CommandError, match="real Stripe keys"):
        call_command("stripe_sandbox", "--port", "0")


def test_command_serves_with_the_sites_webhooks(settings, monkeypatch):
    settings.SITE_URL = "http://127.0.0.1:8000"
    seen: dict[str, object] = {}

    def wait(self: command_module.Command) -> None:
        seen["state"] = SandboxControl(self.server.base_url).state()

    monkeypatch.setattr(command_module.Command, "wait", wait)
    out = io.StringIO()
    call_command("stripe_sandbox", "--port", "0", stdout=out, stderr=io.StringIO())
    assert "Stripe sandbox listening on http://127.0.0.1:" in out.getvalue()
    assert [(w["url"], w["connect"]) for w in seen["state"]["webhooks"]] == [
        ("http://127.0.0.1:8000/payments/stripe/webhook/", False),
        ("http://127.0.0.1:8000/payments/stripe/connect-webhook/", True),
    ]
    assert "Stripe sandbox stopped." in out.getvalue()


def test_the_sandbox_needs_neither_django_nor_stripe():
    code = (
        "import sys; import payments.sandbox.server, payments.sandbox.control; "
        "assert 'django' not in sys.modules and 'stripe' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30)
