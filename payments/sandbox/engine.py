"""The sandbox's in-memory Stripe: objects, balances, events and idempotent results, without HTTP.

Only what the platform uses is implemented, with Stripe's semantics: Connect accounts and their
onboarding, transfers and reversals, Checkout in payment mode, PaymentIntents, charges, refunds,
disputes, balances, balance transactions and events. Money moves between balances keyed by owner
(None is the platform, otherwise a connected account id) and currency, and every movement leaves a
balance transaction, so reconciliation code can be exercised against it.

All state is guarded by `lock`; callers (the HTTP server, the Python helpers) hold it for a whole
request, which keeps each request atomic the way Stripe's are.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payments.sandbox import params as p
from payments.sandbox.errors import ApiError, executing, missing, not_found

API_VERSION = "2026-10-28.endive"
DISPUTE_FEE = 1500
LINK_LIFETIME_SECONDS = 300
SESSION_LIFETIME_SECONDS = 24 * 3600
IDEMPOTENCY_KEY_MAX_LENGTH = 255
LIST_LIMIT_DEFAULT = 10
LIST_LIMIT_MAX = 100
_ALPHANUMERIC = string.ascii_letters + string.digits
# What a new US individual account must still provide before it can receive transfers.
_ONBOARDING_DUE = [
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
_DEFAULT_CURRENCY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "NZ": "nzd", "CH": "chf", "JP": "jpy"}
_EURO_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "CY",
        "DE",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PT",
        "SI",
        "SK",
    ]
)
_NOUNS = {
    "account": "account",
    "balance_transaction": "balance transaction",
    "charge": "charge",
    "checkout.session": "checkout.session",
    "dispute": "dispute",
    "event": "event",
    "payment_intent": "payment_intent",
    "payout": "payout",
    "refund": "refund",
    "transfer": "transfer",
    "transfer_reversal": "transfer reversal",
}


@dataclass(frozen=True)
class RequestContext:
    """Who asked: recorded on events (`request.id`, `request.idempotency_key`) and scoping reads."""

    request_id: str | None = None
    idempotency_key: str | None = None
    account: str | None = None  # the Stripe-Account header: act as this connected account


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: bytes
    request_id: str


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHANUMERIC) for _ in range(length))}"


def stripe_fee(amount: int) -> int:
    """Stripe's card pricing, 2.9% + 30¢, with the percentage rounded half up to a whole cent."""
    return (amount * 29 + 500) // 1000 + 30


def empty_list(url: str) -> dict[str, Any]:
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def fingerprint(*, method: str, path: str, params: dict[str, Any]) -> str:
    body = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class StripeState:
    def __init__(
        self,
        *,
        auto_connected_payouts: bool = True,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.base_url = ""
        self.auto_connected_payouts = auto_connected_payouts
        self.on_event = on_event
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.objects: dict[str, dict[str, Any]] = {}  # every object by id, in creation order
            self.owner: dict[str, str | None] = {}  # object id -> connected account, None = platform
            self.seq: dict[str, int] = {}  # creation order, for list cursors
            self.balances: dict[tuple[str | None, str], int] = {}  # (owner, currency) -> available
            self.paid_out: dict[tuple[str, str], int] = {}  # (account, currency) -> paid to its bank
            self.links: dict[str, dict[str, Any]] = {}  # onboarding token -> link state
            self.session_lines: dict[str, list[dict[str, Any]]] = {}
            self.session_intent_data: dict[str, dict[str, Any]] = {}
            self.idempotent: dict[tuple[str | None, str], StoredResponse] = {}
            self.clock_offset = 0

    # --- basics ------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def _store(self, obj: dict[str, Any], *, owner: str | None = None) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.owner[obj["id"]] = owner
        self.seq[obj["id"]] = len(self.seq)
        return obj

    def get(self, object_type: str, object_id: str, *, account: str | None = None) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        visible = obj is not None and obj["object"] == object_type
        # Connected accounts themselves are the platform's; everything else belongs to one owner.
        if visible and object_type != "account":
            visible = self.owner.get(object_id) == account
        if not visible or obj is None:
            raise not_found(_NOUNS.get(object_type, object_type), object_id)
        return obj

    def render(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """A copy of `obj` for a response, with the `expand` paths replaced by the objects they name."""
        out = copy.deepcopy(obj)
        for path in expand:
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: dict[str, Any], parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        if node.get("object") == "list" and head == "data":
            for item in node["data"]:
                if rest:
                    self._expand(item, rest, path)
            return
        if head not in node or head == "id":
            raise ApiError(f"This property cannot be expanded ({path}).", param="expand")
        value = node[head]
        if isinstance(value, str) and value in self.objects:
            value = node[head] = copy.deepcopy(self.objects[value])
        elif not (value is None or isinstance(value, dict)):
            # Only fields holding another object's id expand (None stays None, as on Stripe).
            raise ApiError(f"This property cannot be expanded ({path}).", param="expand")
        if rest and isinstance(value, dict):
            self._expand(value, rest, path)

    def _emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        ctx: RequestContext | None,
        account: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: dict[str, Any] = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": ctx.request_id if ctx else None,
                "idempotency_key": ctx.idempotency_key if ctx else None,
            },
            "type": event_type,
        }
        if account is not None:
            # A Connect event: it happened on a connected account and goes to Connect endpoints.
            event["account"] = account
        self._store(event, owner=account)
        if self.on_event is not None:
            self.on_event(event)  # sets pending_webhooks and queues or sends deliveries
        return event

    def _balance_transaction(
        self,
        *,
        owner: str | None,
        amount: int,
        currency: str,
        txn_type: str,
        category: str,
        source: str | None,
        fee: int = 0,
        description: str | None = None,
        txn_id: str | None = None,
    ) -> dict[str, Any]:
        now = self.now()
        fee_details = [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Dispute fee" if category == "dispute" else "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        txn = {
            "id": txn_id or new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now,
            "created": now,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": fee_details if fee else [],
            "livemode": False,
            "net": amount - fee,
            "reporting_category": category,
            "source": source,
            "status": "available",
            "type": txn_type,
        }
        self._store(txn, owner=owner)
        self._balance_move(owner, currency, amount - fee)
        return txn

    def _balance_move(self, owner: str | None, currency: str, delta: int) -> None:
        self.balances[(owner, currency)] = self.balances.get((owner, currency), 0) + delta

    def available(self, owner: str | None, currency: str) -> int:
        return self.balances.get((owner, currency), 0)

    # --- idempotency ---------------------------------------------------------------------------------

    def idempotent_lookup(self, *, account: str | None, key: str, fingerprint: str) -> StoredResponse | None:
        if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise ApiError(
                f"Invalid idempotency key: must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters long.",
                error_type="idempotency_error",
            )
        stored = self.idempotent.get((account, key))
        if stored is not None and stored.fingerprint != fingerprint:
            raise ApiError(
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                error_type="idempotency_error",
            )
        return stored

    def idempotent_store(self, *, account: str | None, key: str, response: StoredResponse) -> None:
        self.idempotent[(account, key)] = response

    # --- lists -------------------------------------------------------------------------------------

    def list_objects(
        self,
        *,
        object_type: str,
        query: dict[str, Any],
        url: str,
        account: str | None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        filters: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A Stripe list page, newest first, honouring limit, starting_after, ending_before, created."""
        p.known(query, {"limit", "starting_after", "ending_before", "created", *filters})
        limit = self._limit(query)
        created = self._created_filter(query)
        items = [
            obj
            for object_id, obj in self.objects.items()
            if obj["object"] == object_type
            and (object_type == "account" or self.owner[object_id] == account)
            and created(obj["created"])
            and (where is None or where(obj))
        ]
        items.reverse()
        after = p.string(query, "starting_after")
        before = p.string(query, "ending_before")
        if after is not None:
            cursor = self._cursor(after, "starting_after")
            items = [obj for obj in items if self.seq[obj["id"]] < cursor]
            page, has_more = items[:limit], len(items) > limit
        elif before is not None:
            cursor = self._cursor(before, "ending_before")
            items = [obj for obj in items if self.seq[obj["id"]] > cursor]
            page, has_more = items[-limit:], len(items) > limit
        else:
            page, has_more = items[:limit], len(items) > limit
        return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}

    def _limit(self, query: dict[str, Any]) -> int:
        if query.get("limit") in (None, ""):
            return LIST_LIMIT_DEFAULT
        limit = p.integer(query["limit"], param="limit")
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise ApiError(
                f"This value must be between 1 and {LIST_LIMIT_MAX}.", code="parameter_invalid_integer", param="limit"
            )
        return limit

    def _cursor(self, object_id: str, param: str) -> int:
        if object_id not in self.seq:
            raise ApiError(f"No such object: '{object_id}'", code="resource_missing", param=param)
        return self.seq[object_id]

    def _created_filter(self, query: dict[str, Any]) -> Callable[[int], bool]:
        value = query.get("created")
        if value is None or value == "":
            return lambda _created: True
        if not isinstance(value, dict):
            exact = p.integer(value, param="created")
            return lambda created: created == exact
        p.known(value, {"gt", "gte", "lt", "lte"})
        bounds = {op: p.integer(bound, param=f"created[{op}]") for op, bound in value.items() if op != "expand"}
        checks: dict[str, Callable[[int, int], bool]] = {
            "gt": lambda created, bound: created > bound,
            "gte": lambda created, bound: created >= bound,
            "lt": lambda created, bound: created < bound,
            "lte": lambda created, bound: created <= bound,
        }
        return lambda created: all(checks[op](created, bound) for op, bound in bounds.items())

    # --- accounts ----------------------------------------------------------------------------------

    def account_create(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        p.known(
            params,
            {"country", "email", "capabilities", "controller", "metadata", "type", "business_type", "default_currency"},
        )
        country = (p.string(params, "country") or "US").upper()
        if len(country) != 2 or not country.isalpha():
            raise ApiError(f"Country '{country}' is unknown. Try using a 2-character country code.", param="country")
        email = p.string(params, "email")
        requested = self._requested_capabilities(params)
        controller = p.hash_param(params, "controller")
        account_type = p.string(params, "type")
        if account_type is not None and controller:
            raise ApiError("You cannot specify both `type` and `controller`.", param="type")
        metadata = p.metadata(params)
        account_id = new_id("acct", 16)
        account = {
            "id": account_id,
            "object": "account",
            "business_type": p.string(params, "business_type"),
            "capabilities": dict.fromkeys(requested, "inactive"),
            "charges_enabled": False,
            "controller": {**controller, "is_controller": True, "type": "application"},
            "country": country,
            "created": self.now(),
            "default_currency": _default_currency(country),
            "details_submitted": False,
            "email": email,
            "external_accounts": empty_list(f"/v1/accounts/{account_id}/external_accounts"),
            "livemode": False,
            "metadata": metadata,
            "payouts_enabled": False,
            "requirements": _requirements(due=list(_ONBOARDING_DUE), disabled_reason="requirements.past_due"),
            "settings": {"payouts": {"schedule": {"delay_days": 2, "interval": "daily"}}},
            "tos_acceptance": {"date": None},
            "type": account_type or _account_type(controller),
        }
        return self._store(account)

    def _requested_capabilities(self, params: dict[str, Any]) -> list[str]:
        capabilities = p.hash_param(params, "capabilities")
        requested = []
        for name, options in capabilities.items():
            param = f"capabilities[{name}]"
            if not isinstance(options, dict):
                raise ApiError("Invalid object", param=param)
            p.known(options, {"requested"})
            if p.boolean(options.get("requested", "false"), param=f"{param}[requested]"):
                requested.append(name)
        return requested

    def account_onboard(self, *, account_id: str, complete: bool, ctx: RequestContext | None = None) -> dict[str, Any]:
        """What Stripe's hosted onboarding does when the user submits: complete, or pending review."""
        account = self.get("account", account_id)
        before = copy.deepcopy(account)
        account["details_submitted"] = True
        if account["tos_acceptance"].get("date") is None:
            account["tos_acceptance"] = {"date": self.now(), "ip": "127.0.0.1", "user_agent": "sandbox"}
        if complete:
            account["capabilities"] = dict.fromkeys(account["capabilities"], "active")
            account["charges_enabled"] = "card_payments" in account["capabilities"]
            account["payouts_enabled"] = True
            account["requirements"] = _requirements(due=[], disabled_reason=None)
            account["external_accounts"]["data"] = [_bank_account(account)]
            account["external_accounts"]["total_count"] = 1
        else:
            account["capabilities"] = dict.fromkeys(account["capabilities"], "pending")
            account["payouts_enabled"] = False
            account["requirements"] = _requirements(due=[], disabled_reason="requirements.pending_verification")
            account["requirements"]["pending_verification"] = ["individual.verification.document"]
        previous = {key: before[key] for key in account if before.get(key) != account[key]}
        if previous:
            self._emit("account.updated", account, ctx=ctx, account=account_id, previous=previous)
        return account

    def account_link_create(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        p.known(params, {"account", "refresh_url", "return_url", "type", "collect", "collection_options"})
        account_id = p.string(params, "account", required=True) or ""
        if self.objects.get(account_id, {}).get("object") != "account":
            raise ApiError(f"No such account: '{account_id}'", code="account_invalid", param="account")
        refresh_url = p.url(params, "refresh_url", required=True)
        return_url = p.url(params, "return_url", required=True)
        link_type = p.string(params, "type", required=True)
        if link_type not in ("account_onboarding", "account_update"):
            raise ApiError(
                f"Invalid type: must be one of account_onboarding or account_update ({link_type})", param="type"
            )
        token = secrets.token_urlsafe(24)
        created = self.now()
        link = {
            "object": "account_link",
            "created": created,
            "expires_at": created + LINK_LIFETIME_SECONDS,
            "url": f"{self.base_url}/sandbox/onboard/{token}",
        }
        self.links[token] = {
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "expires_at": link["expires_at"],
            "used": False,
        }
        return link

    def onboarding_link(self, token: str) -> dict[str, Any] | None:
        """The link state for `token`, or None when there is no such link."""
        return self.links.get(token)

    def onboarding_usable(self, link: dict[str, Any]) -> bool:
        # Links are single-use and short-lived; Stripe sends the user to refresh_url otherwise.
        return not link["used"] and self.now() <= link["expires_at"]

    def onboarding_finish(self, token: str, *, submitted: bool) -> str:
        """The user submitted (or left) the hosted onboarding: returns where to send them."""
        link = self.links[token]
        if not self.onboarding_usable(link):
            return link["refresh_url"]
        link["used"] = True
        if submitted:
            self.account_onboard(account_id=link["account"], complete=True)
        return link["return_url"]

    # --- transfers ---------------------------------------------------------------------------------

    def transfer_create(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        p.known(
            params, {"amount", "currency", "destination", "transfer_group", "metadata", "description", "source_type"}
        )
        amount = p.amount(params) or 0
        currency = p.currency(params)
        destination_id = p.string(params, "destination", required=True) or ""
        transfer_group = p.string(params, "transfer_group")
        description = p.string(params, "description")
        metadata = p.metadata(params)
        destination = self.objects.get(destination_id)
        if destination is None or destination["object"] != "account":
            raise ApiError(f"No such destination: '{destination_id}'", code="account_invalid", param="destination")
        if destination["capabilities"].get("transfers") != "active":
            raise executing(
                "Your destination account needs to have at least one of the following capabilities enabled: "
                "transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        if self.available(None, currency) < amount:
            raise executing(
                "You have insufficient available funds in your Stripe account. Try adding funds directly to your "
                "available balance by creating Charges using the 4000000000000077 test card.",
                code="balance_insufficient",
            )
        transfer_id = new_id("tr")
        txn = self._balance_transaction(
            owner=None,
            amount=-amount,
            currency=currency,
            txn_type="transfer",
            category="transfer",
            source=transfer_id,
            description=description,
        )
        payment_id = new_id("py")
        self._balance_transaction(
            owner=destination_id,
            amount=amount,
            currency=currency,
            txn_type="payment",
            category="charge",
            source=payment_id,
        )
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": txn["id"],
            "created": self.now(),
            "currency": currency,
            "description": description,
            "destination": destination_id,
            "destination_payment": payment_id,
            "livemode": False,
            "metadata": metadata,
            "reversals": empty_list(f"/v1/transfers/{transfer_id}/reversals"),
            "reversed": False,
            "source_transaction": None,
            "source_type": "card",
            "transfer_group": transfer_group,
        }
        self._store(transfer)
        self._emit("transfer.created", transfer, ctx=ctx)
        if self.auto_connected_payouts:
            self._connected_payout(destination_id, currency)
        return transfer

    def _connected_payout(self, account_id: str, currency: str) -> dict[str, Any] | None:
        """The connected account's automatic payout of its whole balance to its bank."""
        amount = self.available(account_id, currency)
        if amount <= 0:
            return None
        payout_id = new_id("po")
        txn = self._balance_transaction(
            owner=account_id,
            amount=-amount,
            currency=currency,
            txn_type="payout",
            category="payout",
            source=payout_id,
            description="STRIPE PAYOUT",
        )
        now = self.now()
        payout = {
            "id": payout_id,
            "object": "payout",
            "amount": amount,
            "arrival_date": now,
            "automatic": True,
            "balance_transaction": txn["id"],
            "created": now,
            "currency": currency,
            "description": "STRIPE PAYOUT",
            "destination": f"ba_{account_id.removeprefix('acct_')}",
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "status": "paid",
            "type": "bank_account",
        }
        self._store(payout, owner=account_id)
        self.paid_out[(account_id, currency)] = self.paid_out.get((account_id, currency), 0) + amount
        self._emit("payout.paid", payout, ctx=None, account=account_id)
        return payout

    def transfer_reversal_create(self, ctx: RequestContext, transfer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        p.known(params, {"amount", "description", "metadata", "refund_application_fee"})
        transfer = self.get("transfer", transfer_id)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = p.amount(params, required=False)
        metadata = p.metadata(params)
        if remaining == 0:
            raise ApiError(f"Transfer {transfer_id} has already been fully reversed.", code="transfer_already_reversed")
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise ApiError(
                f"Transfer reversal amount ({amount}) is greater than the amount remaining on the transfer "
                f"({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        account_id, currency = transfer["destination"], transfer["currency"]
        if self.available(account_id, currency) < amount:
            raise executing(
                f"Insufficient funds in the connected account {account_id} to reverse this transfer: its available "
                f"balance is {self.available(account_id, currency)}.",
                code="balance_insufficient",
                param="amount",
            )
        reversal_id = new_id("trr")
        txn = self._balance_transaction(
            owner=None,
            amount=amount,
            currency=currency,
            txn_type="transfer_refund",
            category="transfer_reversal",
            source=reversal_id,
        )
        refund_id = new_id("pyr")
        self._balance_transaction(
            owner=account_id,
            amount=-amount,
            currency=currency,
            txn_type="payment_refund",
            category="refund",
            source=refund_id,
        )
        reversal = {
            "id": reversal_id,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": txn["id"],
            "created": self.now(),
            "currency": currency,
            "destination_payment_refund": refund_id,
            "metadata": metadata,
            "source_refund": None,
            "transfer": transfer_id,
        }
        self._store(reversal)
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        reversals = transfer["reversals"]
        reversals["data"].insert(0, copy.deepcopy(reversal))
        reversals["total_count"] += 1
        self._emit("transfer.reversed", transfer, ctx=ctx)
        return reversal

    # --- checkout, payment intents, charges --------------------------------------------------------

    def checkout_session_create(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        p.known(
            params,
            {
                "mode",
                "line_items",
                "success_url",
                "cancel_url",
                "client_reference_id",
                "metadata",
                "payment_intent_data",
                "customer_email",
                "payment_method_types",
                "locale",
            },
        )
        mode = p.string(params, "mode", required=True)
        if mode != "payment":
            raise ApiError(f"The sandbox supports only mode=payment, not {mode}.", param="mode")
        lines = self._line_items(params)
        currency = lines[0]["currency"]
        total = sum(line["unit_amount"] * line["quantity"] for line in lines)
        if total > p.MAX_AMOUNT:
            raise ApiError(
                "The Checkout Session's total amount due must be no more than "
                f"{p.format_amount(p.MAX_AMOUNT, currency)}.",
                code="amount_too_large",
            )
        minimum = p.MINIMUM_CHARGE.get(currency, 1)
        if total < minimum:
            raise ApiError(
                "The Checkout Session's total amount due must add up to at least "
                f"{p.format_amount(minimum, currency)}.",
                code="amount_too_small",
            )
        success_url = p.url(params, "success_url", required=True)
        cancel_url = p.url(params, "cancel_url")
        intent_data = p.hash_param(params, "payment_intent_data")
        p.known(intent_data, {"metadata", "description", "transfer_group"})
        intent_data = {
            "metadata": p.metadata(intent_data, param="payment_intent_data[metadata]"),
            "description": p.string(intent_data, "description", param="payment_intent_data[description]"),
            "transfer_group": p.string(intent_data, "transfer_group", param="payment_intent_data[transfer_group]"),
        }
        email = p.string(params, "customer_email")
        session_id = new_id("cs_test", 58)
        created = self.now()
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": cancel_url,
            "client_reference_id": p.string(params, "client_reference_id"),
            "created": created,
            "currency": currency,
            "customer": None,
            "customer_details": None,
            "customer_email": email,
            "expires_at": created + SESSION_LIFETIME_SECONDS,
            "livemode": False,
            "metadata": p.metadata(params),
            "mode": "payment",
            "payment_intent": None,
            "payment_method_types": ["card", "us_bank_account"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": success_url,
            "url": f"{self.base_url}/sandbox/checkout/{session_id}",
        }
        self.session_lines[session_id] = lines
        self.session_intent_data[session_id] = intent_data
        return self._store(session)

    def _line_items(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        raw = params.get("line_items")
        if raw in (None, "", []):
            raise missing("line_items")
        if not isinstance(raw, list):
            raise ApiError("Invalid array", param="line_items")
        lines = [self._line_item(item, f"line_items[{index}]") for index, item in enumerate(raw)]
        if len({line["currency"] for line in lines}) > 1:
            raise ApiError("All line items must use the same currency.", param="line_items")
        return lines

    def _line_item(self, item: Any, param: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise ApiError("Invalid object", param=param)
        p.known(item, {"price_data", "quantity"})
        if "price_data" not in item:
            raise ApiError("The sandbox supports only line items with price_data.", param=f"{param}[price_data]")
        price = p.hash_param(item, "price_data")
        p.known(price, {"currency", "unit_amount", "product_data"})
        product = p.hash_param(price, "product_data")
        name = p.string(product, "name", required=True, param=f"{param}[price_data][product_data][name]")
        quantity = p.amount(item, "quantity", param=f"{param}[quantity]") or 0
        return {
            "currency": p.currency(price, param=f"{param}[price_data][currency]"),
            "unit_amount": p.amount(price, "unit_amount", param=f"{param}[price_data][unit_amount]") or 0,
            "name": name,
            "quantity": quantity,
        }

    def checkout_lines(self, session_id: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.session_lines.get(session_id, []))

    def checkout_pay(self, *, session_id: str, outcome: str) -> dict[str, Any]:
        """The customer's action on the hosted payment page: paid, declined, or async (bank transfer)."""
        session = self.get("checkout.session", session_id)
        if outcome not in ("paid", "declined", "async"):
            raise ApiError(f"Invalid outcome: must be one of paid, declined or async ({outcome})", param="outcome")
        if session["status"] != "open":
            raise ApiError(f"Checkout Session {session_id} is not open (status {session['status']}).")
        if outcome == "declined":
            return session  # Checkout keeps the session open so the customer can try another card
        method = "card" if outcome == "paid" else "us_bank_account"
        intent = self._payment_intent_create(session, method=method)
        session["payment_intent"] = intent["id"]
        session["status"] = "complete"
        if session["customer_email"]:
            session["customer_details"] = {"email": session["customer_email"], "name": None}
        if outcome == "paid":
            self._charge_create(intent, method=method)
            session["payment_status"] = "paid"
        self._emit("checkout.session.completed", session, ctx=None)
        return session

    def checkout_settle(self, *, session_id: str, success: bool) -> dict[str, Any]:
        """A delayed payment method's outcome arriving days later."""
        session = self.get("checkout.session", session_id)
        intent = self.objects.get(session["payment_intent"] or "")
        if session["status"] != "complete" or intent is None or intent["status"] != "processing":
            raise ApiError(f"Checkout Session {session_id} has no payment waiting to settle.")
        if success:
            self._charge_create(intent, method="us_bank_account")
            session["payment_status"] = "paid"
            self._emit("checkout.session.async_payment_succeeded", session, ctx=None)
        else:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "code": "payment_method_provider_decline",
                "message": "The customer's bank declined the debit.",
                "type": "card_error",
            }
            self._emit("checkout.session.async_payment_failed", session, ctx=None)
        return session

    def _payment_intent_create(self, session: dict[str, Any], *, method: str) -> dict[str, Any]:
        intent_data = self.session_intent_data[session["id"]]
        intent = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": 0,
            "created": self.now(),
            "currency": session["currency"],
            "description": intent_data["description"],
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": copy.deepcopy(intent_data["metadata"]),
            "payment_method_types": [method],
            "status": "processing",
            "transfer_group": intent_data["transfer_group"],
        }
        return self._store(intent)

    def _charge_create(self, intent: dict[str, Any], *, method: str) -> dict[str, Any]:
        amount, currency = intent["amount"], intent["currency"]
        charge_id = new_id("ch")
        txn = self._balance_transaction(
            owner=None,
            amount=amount,
            currency=currency,
            txn_type="charge",
            category="charge",
            source=charge_id,
            fee=stripe_fee(amount),
            description=intent["description"],
        )
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "balance_transaction": txn["id"],
            "captured": True,
            "created": self.now(),
            "currency": currency,
            "description": intent["description"],
            "disputed": False,
            "livemode": False,
            "metadata": copy.deepcopy(intent["metadata"]),
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method_details": {"type": method},
            "refunded": False,
            "refunds": empty_list(f"/v1/charges/{charge_id}/refunds"),
            "status": "succeeded",
            "transfer_group": intent["transfer_group"],
        }
        self._store(charge)
        intent.update(status="succeeded", amount_received=amount, latest_charge=charge_id, last_payment_error=None)
        return charge

    # --- refunds and disputes ----------------------------------------------------------------------

    def refund_create(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        p.known(params, {"charge", "payment_intent", "amount", "metadata", "reason"})
        charge = self._refundable_charge(params)
        amount = p.amount(params, required=False)
        metadata = p.metadata(params)
        reason = p.string(params, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise ApiError(f"Invalid reason: {reason}", param="reason")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise ApiError(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise ApiError(
                f"Refund amount ({p.format_amount(amount, charge['currency'])}) is greater than unrefunded amount "
                f"on charge ({p.format_amount(remaining, charge['currency'])})",
                code="amount_too_large",
                param="amount",
            )
        if self._open_dispute(charge["id"]) is not None:
            raise executing(f"Charge {charge['id']} has been disputed and can't be refunded.", code="charge_disputed")
        refund_id = new_id("re")
        txn = self._balance_transaction(
            owner=None,
            amount=-amount,
            currency=charge["currency"],
            txn_type="refund",
            category="refund",
            source=refund_id,
        )
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": txn["id"],
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "succeeded",
        }
        self._store(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        charge["refunds"]["total_count"] += 1
        self._emit("charge.refunded", charge, ctx=ctx)
        return refund

    def _refundable_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        charge_id = p.string(params, "charge")
        intent_id = p.string(params, "payment_intent")
        if charge_id is None and intent_id is None:
            raise ApiError("One of the following params should be provided for this request: payment_intent or charge.")
        if intent_id is not None:
            intent = self.objects.get(intent_id)
            if intent is None or intent["object"] != "payment_intent":
                raise not_found("payment_intent", intent_id, param="payment_intent", status=400)
            if intent["latest_charge"] is None or intent["status"] != "succeeded":
                raise ApiError(
                    "This PaymentIntent does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            if charge_id is not None and charge_id != intent["latest_charge"]:
                raise ApiError("The charge does not belong to this PaymentIntent.", param="charge")
            charge_id = intent["latest_charge"]
        charge = self.objects.get(charge_id or "")
        if charge is None or charge["object"] != "charge":
            raise not_found("charge", charge_id or "", param="charge", status=400)
        return charge

    def _open_dispute(self, charge_id: str) -> dict[str, Any] | None:
        for obj in self.objects.values():
            if obj["object"] == "dispute" and obj["charge"] == charge_id and obj["status"] == "needs_response":
                return obj
        return None

    def charge_dispute(self, *, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """The cardholder's bank opens a chargeback: amount and the dispute fee leave the balance."""
        charge = self.get("charge", charge_id)
        if charge["disputed"]:
            raise ApiError(f"Charge {charge_id} is already disputed.")
        amount = charge["amount"] if amount is None else amount
        if not 1 <= amount <= charge["amount"]:
            raise ApiError(f"Dispute amount must be between 1 and {charge['amount']}.", param="amount")
        dispute_id = new_id("du")
        txn = self._balance_transaction(
            owner=None,
            amount=-amount,
            currency=charge["currency"],
            txn_type="adjustment",
            category="dispute",
            source=dispute_id,
            fee=DISPUTE_FEE,
            description=f"Chargeback withdrawal for {charge_id}",
        )
        dispute = {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [copy.deepcopy(txn)],
            "charge": charge_id,
            "created": self.now(),
            "currency": charge["currency"],
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        self._store(dispute)
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute, ctx=None)
        return dispute

    def dispute_close(self, *, dispute_id: str, won: bool) -> dict[str, Any]:
        dispute = self.get("dispute", dispute_id)
        if dispute["status"] != "needs_response":
            raise ApiError(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
        dispute["status"] = "won" if won else "lost"
        if won:
            txn = self._balance_transaction(
                owner=None,
                amount=dispute["amount"],
                currency=dispute["currency"],
                txn_type="adjustment",
                category="dispute_reversal",
                source=dispute_id,
                description=f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"].append(copy.deepcopy(txn))
        self._emit("charge.dispute.closed", dispute, ctx=None)
        return dispute

    # --- balance -----------------------------------------------------------------------------------

    def balance(self, *, account: str | None) -> dict[str, Any]:
        currencies = sorted({currency for owner, currency in self.balances if owner == account})
        if not currencies:
            default = self.objects[account]["default_currency"] if account else "usd"
            currencies = [default]
        return {
            "object": "balance",
            "available": [
                {
                    "amount": self.available(account, cur),
                    "currency": cur,
                    "source_types": {"card": self.available(account, cur)},
                }
                for cur in currencies
            ],
            "livemode": False,
            "pending": [{"amount": 0, "currency": cur, "source_types": {"card": 0}} for cur in currencies],
        }

    def balance_add(self, *, amount: int, currency: str) -> dict[str, Any]:
        """Test funds on the platform balance (what a top-up or the 4000000000000077 card gives)."""
        params = {"amount": str(amount), "currency": currency}
        checked_amount = p.amount(params) or 0
        return self._balance_transaction(
            owner=None,
            amount=checked_amount,
            currency=p.currency(params),
            txn_type="adjustment",
            category="other_adjustment",
            source=None,
            description="Sandbox: funds added",
        )

    # --- summary -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for obj in self.objects.values():
            counts[obj["object"]] = counts.get(obj["object"], 0) + 1
        accounts = [
            {
                "id": obj["id"],
                "email": obj["email"],
                "transfers": obj["capabilities"].get("transfers"),
                "details_submitted": obj["details_submitted"],
                "balance": {cur: amt for (owner, cur), amt in self.balances.items() if owner == obj["id"]},
                "paid_out": {cur: amt for (owner, cur), amt in self.paid_out.items() if owner == obj["id"]},
            }
            for obj in self.objects.values()
            if obj["object"] == "account"
        ]
        return {
            "counts": counts,
            "platform_balance": {cur: amt for (owner, cur), amt in self.balances.items() if owner is None},
            "accounts": accounts,
            "auto_connected_payouts": self.auto_connected_payouts,
            "clock_offset": self.clock_offset,
        }


def _default_currency(country: str) -> str:
    return "eur" if country in _EURO_COUNTRIES else _DEFAULT_CURRENCY.get(country, "usd")


def _account_type(controller: dict[str, Any]) -> str:
    dashboard = controller.get("stripe_dashboard", {})
    dashboard_type = dashboard.get("type") if isinstance(dashboard, dict) else None
    return {"express": "express", "full": "standard", "none": "custom"}.get(str(dashboard_type), "none")


def _requirements(*, due: list[str], disabled_reason: str | None) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def _bank_account(account: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"ba_{account['id'].removeprefix('acct_')}",
        "object": "bank_account",
        "account": account["id"],
        "bank_name": "STRIPE TEST BANK",
        "country": account["country"],
        "currency": account["default_currency"],
        "last4": "6789",
        "status": "new",
    }
