"""A small Stripe-compatible HTTP server for development and tests (stdlib only; no Django, no `stripe`).

No offline stand-in supports Connect, so the platform ships its own, implementing only what it uses:

- `/v1/...`: the Stripe API subset (form-encoded bodies with bracket notation, Bearer auth,
  `Idempotency-Key`, `Stripe-Account`, Stripe-shaped errors, `Request-Id` on every response);
- `/sandbox/...`: stand-ins for Stripe's hosted onboarding and Checkout pages;
- `/_sandbox/...`: unauthenticated JSON control endpoints (reset, webhooks, faults, paying a
  Checkout Session, settling, disputes, funds...), each also a method on `SandboxServer`.

Run standalone with `python -m payments.sandbox.server --port 12111`, or through Django with
`manage.py stripe_sandbox`, which also registers the project's webhook endpoints.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from payments.sandbox import pages
from payments.sandbox import params as p
from payments.sandbox.engine import API_VERSION, RequestContext, StoredResponse, StripeState, fingerprint, new_id
from payments.sandbox.errors import ApiError
from payments.sandbox.forms import FormError, parse_query
from payments.sandbox.webhooks import Delivery, Dispatcher

__all__ = ["Delivery", "SandboxServer"]

FAULT_KINDS = ("500", "timeout", "429")
DEFAULT_FAULT_DELAY_SECONDS = 5.0
_MAX_BODY_BYTES = 1_000_000


@dataclass
class Fault:
    method: str
    path_prefix: str
    kind: str
    remaining: int
    delay: float


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the response (the "timeout" fault)

    @classmethod
    def json(cls, status: int, data: Any, **headers: str) -> Response:
        return cls(
            status, (json.dumps(data, indent=2) + "\n").encode(), {"Content-Type": "application/json", **headers}
        )

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", {"Location": location})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    request_id: str


Handler = Callable[[RequestContext, dict[str, Any], tuple[str, ...]], dict[str, Any]]


class SandboxServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_deliver: bool = True,
        auto_connected_payouts: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._log = log
        self._initial_auto_payouts = auto_connected_payouts
        self.dispatcher = Dispatcher(auto_deliver=auto_deliver, log=log)
        self.engine = StripeState(auto_connected_payouts=auto_connected_payouts, on_event=self.dispatcher.event_created)
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._api_routes()

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("The sandbox isn't started yet: call start() first.")
        return f"http://{_url_host(self.host)}:{self.port}"

    def start(self) -> str:
        """Listen and serve in a daemon thread; returns the base URL (http://127.0.0.1:PORT)."""
        if self._httpd is not None:
            return self.base_url
        _HTTPServer.address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        httpd = _HTTPServer((self.host, self.port), _RequestHandler)
        httpd.sandbox = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self.engine.base_url = self.base_url
        self._stopping.clear()
        # A short poll interval keeps stop() (which waits for the serving loop to notice) fast in tests.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-sandbox", daemon=True
        )
        self._thread.start()
        self.dispatcher.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()  # wakes requests held by a "timeout" fault
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.dispatcher.stop()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- Python-level helpers (each also a control endpoint) ---------------------------------------

    def webhook_register(self, *, url: str | None, secret: str, connect: bool) -> dict[str, Any]:
        """An endpoint receiving platform events (connect=False) or connected-account events (connect=True).

        With url=None nothing is sent over HTTP; tests read the signed deliveries with take_deliveries().
        """
        endpoint = self.dispatcher.register(url=url, secret=secret, connect=connect)
        return {"id": endpoint.id, "url": endpoint.url, "connect": endpoint.connect}

    def take_deliveries(self) -> list[Delivery]:
        """Pop the deliveries queued so far (auto_deliver=False), oldest first."""
        return self.dispatcher.take()

    def deliver(self) -> list[dict[str, Any]]:
        """POST the queued deliveries that have a URL, once each, now (auto_deliver=False)."""
        return self.dispatcher.deliver_queued()

    def fault(
        self,
        *,
        method: str,
        path_prefix: str,
        kind: str,
        count: int = 1,
        delay: float = DEFAULT_FAULT_DELAY_SECONDS,
    ) -> None:
        """Make the next `count` API requests matching method and path prefix fail like Stripe can.

        "500": an api_error, nothing done and no idempotent result stored; "429": a rate_limit error,
        nothing done; "timeout": the work IS done and stored, then the response is held `delay` seconds,
        so a client with a shorter timeout gives up after Stripe acted.
        """
        if kind not in FAULT_KINDS:
            raise ApiError(f"Invalid fault kind {kind!r}: must be one of {', '.join(FAULT_KINDS)}.", param="kind")
        if count < 1 or delay < 0:
            raise ApiError("count must be at least 1 and delay not negative.", param="count")
        with self.engine.lock:
            self._faults.append(Fault(method.upper(), path_prefix, kind, count, float(delay)))

    def reset(self, *, webhooks: bool = False) -> None:
        """Forget all objects, balances, events, queued deliveries and faults.

        Registered webhook endpoints survive unless webhooks=True, as they do when Stripe deletes test
        data, so a reset from seed_demo doesn't disconnect a running development server.
        """
        with self.engine.lock:
            self.engine.clear()
            self.engine.auto_connected_payouts = self._initial_auto_payouts
            self._faults.clear()
            self.dispatcher.clear(endpoints=webhooks)

    def configure(self, *, auto_connected_payouts: bool | None = None) -> dict[str, Any]:
        """Switch behaviour at runtime: auto_connected_payouts=False keeps transferred funds on the
        connected account (so transfers can be reversed) instead of paying them out at once."""
        with self.engine.lock:
            if auto_connected_payouts is not None:
                self.engine.auto_connected_payouts = auto_connected_payouts
            return {"auto_connected_payouts": self.engine.auto_connected_payouts}

    def clock_advance(self, *, seconds: int) -> int:
        """Move the sandbox's clock forward (expires links, dates new objects); returns the new time."""
        with self.engine.lock:
            self.engine.clock_offset += int(seconds)
            return self.engine.now()

    def checkout_pay(self, *, session_id: str, outcome: str) -> dict[str, Any]:
        with self.engine.lock:
            return self.engine.render(self.engine.checkout_pay(session_id=session_id, outcome=outcome), [])

    def checkout_settle(self, *, session_id: str, success: bool) -> dict[str, Any]:
        with self.engine.lock:
            return self.engine.render(self.engine.checkout_settle(session_id=session_id, success=success), [])

    def account_onboard(self, *, account_id: str, complete: bool = True) -> dict[str, Any]:
        """What submitting Stripe's onboarding does; complete=False leaves verification pending."""
        with self.engine.lock:
            return self.engine.render(self.engine.account_onboard(account_id=account_id, complete=complete), [])

    def charge_dispute(self, *, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        with self.engine.lock:
            return self.engine.render(self.engine.charge_dispute(charge_id=charge_id, amount=amount), [])

    def dispute_close(self, *, dispute_id: str, won: bool) -> dict[str, Any]:
        with self.engine.lock:
            return self.engine.render(self.engine.dispute_close(dispute_id=dispute_id, won=won), [])

    def balance_add(self, *, amount: int, currency: str) -> dict[str, Any]:
        with self.engine.lock:
            return self.engine.render(self.engine.balance_add(amount=amount, currency=currency), [])

    def state(self) -> dict[str, Any]:
        with self.engine.lock:
            summary = self.engine.summary()
            summary["faults"] = [asdict(fault) for fault in self._faults if fault.remaining > 0]
        summary["base_url"] = self.base_url if self._httpd is not None else None
        summary["webhooks"] = [
            {"id": endpoint.id, "url": endpoint.url, "connect": endpoint.connect}
            for endpoint in self.dispatcher.endpoints()
        ]
        summary["queued_deliveries"] = self.dispatcher.queued_count()
        summary["recent_deliveries"] = self.dispatcher.history()[-20:]
        return summary

    # --- request handling --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            if request.path.startswith("/v1/"):
                response = self._handle_api(request)
            elif request.path.startswith("/_sandbox/"):
                response = self._handle_control(request)
            elif request.path.startswith("/sandbox/"):
                response = self._handle_page(request)
            else:
                response = Response.json(
                    404, ApiError(f"Unrecognized request URL ({request.method}: {request.path}).").body()
                )
        except ApiError as exc:
            response = Response.json(exc.status, exc.body())
        response.headers["Request-Id"] = request.request_id
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.engine.lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method == method and path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    return fault
        return None

    def _handle_api(self, request: Request) -> Response:
        _authenticate(request.headers.get("authorization", ""))
        fault = self._take_fault(request.method, request.path)
        if fault is not None and fault.kind == "500":
            return Response.json(
                500,
                ApiError("An unknown error occurred (sandbox fault).", status=500, error_type="api_error").body(),
            )
        if fault is not None and fault.kind == "429":
            return Response.json(
                429,
                ApiError(
                    "Request rate limit exceeded (sandbox fault).",
                    status=429,
                    error_type="invalid_request_error",
                    code="rate_limit",
                ).body(),
            )
        response = self._api_call(request)
        if fault is not None:  # "timeout": the work is done and stored; only the answer is late
            response.delay = fault.delay
        response.headers["Stripe-Version"] = request.headers.get("stripe-version", API_VERSION)
        return response

    def _api_call(self, request: Request) -> Response:
        handler, groups = self._route(request.method, request.path)
        try:
            text = request.body.decode() if request.method == "POST" else request.query
            query = parse_query(text)
        except (FormError, UnicodeDecodeError) as exc:
            raise ApiError(f"Invalid request body: {exc}") from exc
        account = request.headers.get("stripe-account") or None
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        ctx = RequestContext(request_id=request.request_id, idempotency_key=key, account=account)
        with self.engine.lock:
            if account is not None:
                self._check_account_header(account, request.method)
            if key is None:
                return self._execute(handler, ctx, query, groups)
            print_ = fingerprint(method=request.method, path=request.path, params=query)
            stored = self.engine.idempotent_lookup(account=account, key=key, fingerprint=print_)
            if stored is not None:
                return _replay(stored, key)
            try:
                response = self._execute(handler, ctx, query, groups)
            except ApiError as exc:
                if exc.validation:
                    raise  # refused before executing: nothing stored, safe to retry with the key
                response = Response.json(exc.status, exc.body())
            stored = StoredResponse(print_, response.status, response.body, request.request_id)
            self.engine.idempotent_store(account=account, key=key, response=stored)
            response.headers["Idempotency-Key"] = key
            return response

    def _execute(
        self, handler: Handler, ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]
    ) -> Response:
        expand = p.expand(query)
        params = {name: value for name, value in query.items() if name != "expand"}
        result = handler(ctx, params, groups)
        return Response.json(200, self.engine.render(result, expand))

    def _check_account_header(self, account: str, method: str) -> None:
        if self.engine.objects.get(account, {}).get("object") != "account":
            raise ApiError(
                f"The provided key does not have access to account '{account}' (or that account does not exist).",
                status=403,
                error_type="invalid_request_error",
                code="account_invalid",
            )
        if method != "GET":
            raise ApiError("The sandbox only supports reading (GET) on behalf of a connected account.")

    def _route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and route_method == method:
                return handler, match.groups()
        raise ApiError(f"Unrecognized request URL ({method}: {path}).", status=404)

    def _api_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        e = self.engine
        idp = r"([A-Za-z0-9_]+)"
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/accounts", lambda ctx, q, g: e.account_create(ctx, q)),
            ("GET", "/v1/accounts", self._lister("account", "/v1/accounts")),
            ("GET", f"/v1/accounts/{idp}", self._getter("account")),
            ("POST", "/v1/account_links", lambda ctx, q, g: e.account_link_create(ctx, q)),
            ("POST", "/v1/transfers", lambda ctx, q, g: e.transfer_create(ctx, q)),
            ("GET", "/v1/transfers", self._lister("transfer", "/v1/transfers", "transfer_group", "destination")),
            ("GET", f"/v1/transfers/{idp}", self._getter("transfer")),
            ("POST", f"/v1/transfers/{idp}/reversals", lambda ctx, q, g: e.transfer_reversal_create(ctx, g[0], q)),
            ("GET", f"/v1/transfers/{idp}/reversals", self._reversals),
            ("POST", "/v1/checkout/sessions", lambda ctx, q, g: e.checkout_session_create(ctx, q)),
            (
                "GET",
                "/v1/checkout/sessions",
                self._lister("checkout.session", "/v1/checkout/sessions", "payment_intent", "status"),
            ),
            ("GET", f"/v1/checkout/sessions/{idp}", self._getter("checkout.session")),
            ("GET", "/v1/payment_intents", self._lister("payment_intent", "/v1/payment_intents")),
            ("GET", f"/v1/payment_intents/{idp}", self._getter("payment_intent")),
            ("GET", "/v1/charges", self._lister("charge", "/v1/charges", "payment_intent", "transfer_group")),
            ("GET", f"/v1/charges/{idp}", self._getter("charge")),
            ("POST", "/v1/refunds", lambda ctx, q, g: e.refund_create(ctx, q)),
            ("GET", "/v1/refunds", self._lister("refund", "/v1/refunds", "charge", "payment_intent")),
            ("GET", f"/v1/refunds/{idp}", self._getter("refund")),
            ("GET", "/v1/disputes", self._lister("dispute", "/v1/disputes", "charge", "payment_intent")),
            ("GET", f"/v1/disputes/{idp}", self._getter("dispute")),
            ("GET", "/v1/payouts", self._lister("payout", "/v1/payouts", "status")),
            ("GET", f"/v1/payouts/{idp}", self._getter("payout")),
            ("GET", "/v1/balance", self._balance),
            (
                "GET",
                "/v1/balance_transactions",
                self._lister("balance_transaction", "/v1/balance_transactions", "type", "source", "currency"),
            ),
            ("GET", f"/v1/balance_transactions/{idp}", self._getter("balance_transaction")),
            ("GET", "/v1/events", self._events),
            ("GET", f"/v1/events/{idp}", self._getter("event")),
        ]
        return [(method, re.compile(pattern), handler) for method, pattern, handler in routes]

    def _getter(self, object_type: str) -> Handler:
        def get(ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
            p.known(query, ())
            return self.engine.get(object_type, groups[0], account=ctx.account)

        return get

    def _lister(self, object_type: str, url: str, *filters: str) -> Handler:
        """A list endpoint whose extra filters compare a field to a string (`?transfer_group=...`)."""

        def list_(ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
            wanted = {name: p.string(query, name) for name in filters}
            wanted = {name: value for name, value in wanted.items() if value is not None}

            def where(obj: dict[str, Any]) -> bool:
                return all(obj.get(name) == value for name, value in wanted.items())

            return self.engine.list_objects(
                object_type=object_type, query=query, url=url, account=ctx.account, where=where, filters=filters
            )

        return list_

    def _reversals(self, ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
        transfer_id = self.engine.get("transfer", groups[0], account=ctx.account)["id"]
        return self.engine.list_objects(
            object_type="transfer_reversal",
            query=query,
            url=f"/v1/transfers/{transfer_id}/reversals",
            account=ctx.account,
            where=lambda obj: obj["transfer"] == transfer_id,
        )

    def _balance(self, ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
        p.known(query, ())
        return self.engine.balance(account=ctx.account)

    def _events(self, ctx: RequestContext, query: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
        event_type = p.string(query, "type")
        types = p.string_list(query, "types")

        def where(event: dict[str, Any]) -> bool:
            if event_type is not None and not _type_matches(event["type"], event_type):
                return False
            return not types or event["type"] in types

        return self.engine.list_objects(
            object_type="event",
            query=query,
            url="/v1/events",
            account=ctx.account,
            where=where,
            filters=("type", "types"),
        )

    # --- control endpoints -------------------------------------------------------------------------

    def _handle_control(self, request: Request) -> Response:
        body = _json_body(request.body) if request.method == "POST" else {}
        route = request.path.removeprefix("/_sandbox/").strip("/")
        parts = route.split("/")
        result = self._control(request.method, parts, body)
        return Response.json(200, result)

    def _control(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        match method, parts:
            case "GET", ["health"]:
                return {"sandbox": "stripe", "api_version": API_VERSION}
            case "GET", ["state"]:
                return self.state()
            case "POST", ["reset"]:
                self.reset(webhooks=_field(body, "webhooks", bool, False))
                return {"reset": True}
            case "POST", ["webhooks"]:
                url = body.get("url")
                if url is not None and not isinstance(url, str):
                    raise ApiError("url must be a string or null", param="url")
                return self.webhook_register(
                    url=url, secret=_field(body, "secret", str), connect=_field(body, "connect", bool, False)
                )
            case "POST", ["faults"]:
                self.fault(
                    method=_field(body, "method", str),
                    path_prefix=_field(body, "path_prefix", str),
                    kind=str(_field(body, "kind", (str, int))),
                    count=_field(body, "count", int, 1),
                    delay=float(_field(body, "delay", (int, float), DEFAULT_FAULT_DELAY_SECONDS)),
                )
                return {"faults": self.state()["faults"]}
            case "POST", ["config"]:
                return self.configure(auto_connected_payouts=_field(body, "auto_connected_payouts", bool, None))
            case "POST", ["clock"]:
                return {"now": self.clock_advance(seconds=_field(body, "advance", int))}
            case "POST", ["checkout", session_id, "pay"]:
                return self.checkout_pay(session_id=session_id, outcome=_field(body, "outcome", str))
            case "POST", ["checkout", session_id, "settle"]:
                return self.checkout_settle(session_id=session_id, success=_field(body, "success", bool))
            case "POST", ["accounts", account_id, "onboard"]:
                return self.account_onboard(account_id=account_id, complete=_field(body, "complete", bool, True))
            case "POST", ["charges", charge_id, "dispute"]:
                return self.charge_dispute(charge_id=charge_id, amount=_field(body, "amount", int, None))
            case "POST", ["disputes", dispute_id, "close"]:
                return self.dispute_close(dispute_id=dispute_id, won=_field(body, "won", bool))
            case "POST", ["balance"]:
                return self.balance_add(amount=_field(body, "amount", int), currency=_field(body, "currency", str))
            case "POST", ["deliver"]:
                return {"deliveries": self.deliver()}
            case "POST", ["deliveries", "take"]:
                return {"deliveries": [_delivery_json(delivery) for delivery in self.take_deliveries()]}
        raise ApiError(f"Unrecognized sandbox control URL ({method}: /_sandbox/{'/'.join(parts)}).", status=404)

    # --- hosted pages ------------------------------------------------------------------------------

    def _handle_page(self, request: Request) -> Response:
        parts = request.path.removeprefix("/sandbox/").strip("/").split("/")
        form = dict(parse_qsl(request.body.decode(errors="replace"))) if request.method == "POST" else {}
        with self.engine.lock:
            match request.method, parts:
                case "GET", ["onboard", token]:
                    return self._onboarding_page(token)
                case "POST", ["onboard", token]:
                    return self._onboarding_finish(token, submitted=True)
                case "GET", ["onboard", token, "leave"]:
                    return self._onboarding_finish(token, submitted=False)
                case "GET", ["checkout", session_id]:
                    return self._checkout_page(session_id)
                case "POST", ["checkout", session_id]:
                    return self._checkout_submit(session_id, form.get("outcome", ""))
        return Response.html(404, pages.not_found(request.path))

    def _onboarding_page(self, token: str) -> Response:
        link = self.engine.onboarding_link(token)
        if link is None:
            return Response.html(404, pages.not_found("This onboarding link doesn't exist."))
        if not self.engine.onboarding_usable(link):
            return Response.redirect(link["refresh_url"])
        account = self.engine.get("account", link["account"])
        return Response.html(200, pages.onboarding(account=account, token=token))

    def _onboarding_finish(self, token: str, *, submitted: bool) -> Response:
        if self.engine.onboarding_link(token) is None:
            return Response.html(404, pages.not_found("This onboarding link doesn't exist."))
        return Response.redirect(self.engine.onboarding_finish(token, submitted=submitted))

    def _checkout_page(self, session_id: str) -> Response:
        session = self.engine.objects.get(session_id)
        if session is None or session["object"] != "checkout.session":
            return Response.html(404, pages.not_found("This Checkout Session doesn't exist."))
        if session["status"] != "open":
            return Response.html(200, pages.checkout_closed(session=session, success_url=_success_url(session)))
        return Response.html(200, pages.checkout(session=session, lines=self.engine.checkout_lines(session_id)))

    def _checkout_submit(self, session_id: str, outcome: str) -> Response:
        session = self.engine.objects.get(session_id)
        if session is None or session["object"] != "checkout.session":
            return Response.html(404, pages.not_found("This Checkout Session doesn't exist."))
        if session["status"] != "open":
            return Response.html(200, pages.checkout_closed(session=session, success_url=_success_url(session)))
        session = self.engine.checkout_pay(session_id=session_id, outcome=outcome)
        if outcome == "declined":
            return Response.html(402, pages.checkout_declined(session=session))
        return Response.redirect(_success_url(session) or "/")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    sandbox: SandboxServer


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "stripe-sandbox/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = Request(
            method=method,
            path=path,
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            request_id=new_id("req", 14),
        )
        response = sandbox.handle(request)
        if response.delay and sandbox._stopping.wait(response.delay):
            return  # stopping: drop the held response
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired first); Stripe's work is done regardless

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox._log is not None:
            self.server.sandbox._log(f"{self.address_string()} {format % args}")


def _url_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name such as localhost
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"  # listening everywhere; links need one address
    return f"[{host}]" if address.version == 6 else host


def _authenticate(header: str) -> None:
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using "
            "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            status=401,
        )
    # Test keys only: the sandbox must never be mistaken for Stripe by code holding a live key.
    if scheme.lower() != "bearer" or not key.startswith("sk_test_"):
        shown = f"{key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}" if len(key) > 12 else "****"
        raise ApiError(f"Invalid API Key provided: {shown}", status=401)


def _replay(stored: StoredResponse, key: str) -> Response:
    return Response(
        stored.status,
        stored.body,
        {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "Idempotent-Replayed": "true",
            "Original-Request": stored.request_id,
        },
    )


def _type_matches(event_type: str, pattern: str) -> bool:
    # Stripe accepts one trailing wildcard: `type=checkout.session.*`.
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def _success_url(session: dict[str, Any]) -> str | None:
    url = session.get("success_url")
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(f"Invalid JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError("The JSON body must be an object.")
    return data


_REQUIRED = object()


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    if name not in body or body[name] is None:
        if default is _REQUIRED:
            raise ApiError(f"Missing required field: {name}.", code="parameter_missing", param=name)
        return default
    value = body[name]
    # bool is an int in Python; a JSON `true` must not pass for a count or an amount.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ApiError(f"Invalid {name}: {value!r}.", param=name)
    return value


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "connect": delivery.connect,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "payload": delivery.payload.decode(),
        "headers": delivery.headers,
        "url": delivery.url,
    }


def main(argv: list[str] | None = None) -> None:
    """Standalone: `python -m payments.sandbox.server [--port N] [--webhook-url URL --webhook-secret S]`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret", default="whsec_sandbox_platform")
    parser.add_argument("--connect-webhook-url")
    parser.add_argument("--connect-webhook-secret", default="whsec_sandbox_connect")
    args = parser.parse_args(argv)
    server = SandboxServer(host=args.host, port=args.port, log=print)
    if args.webhook_url:
        server.webhook_register(url=args.webhook_url, secret=args.webhook_secret, connect=False)
    if args.connect_webhook_url:
        server.webhook_register(url=args.connect_webhook_url, secret=args.connect_webhook_secret, connect=True)
    print(f"Stripe sandbox listening on {server.start()} (Ctrl+C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
