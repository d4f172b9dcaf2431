"""A tiny client for a sandbox running in another process (e.g. `manage.py stripe_sandbox`).

`seed_demo` and scripts use it to drive what a human would do on Stripe's side: pay a Checkout
Session, settle a bank transfer, finish onboarding, open a dispute. Methods mirror `SandboxServer`'s.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

_TIMEOUT_SECONDS = 10.0


class SandboxControlError(Exception):
    """The sandbox refused a control request or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def sandbox_reachable(base_url: str, timeout: float = 0.5) -> bool:
    """Whether a Stripe sandbox (not just any server) answers at `base_url`."""
    try:
        health = SandboxControl(base_url, timeout=timeout).health()
    except SandboxControlError:
        return False
    return health.get("sandbox") == "stripe"


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = _TIMEOUT_SECONDS) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def reset(self, *, webhooks: bool = False) -> None:
        self._call("POST", "reset", {"webhooks": webhooks})

    def webhook_register(self, *, url: str | None, secret: str, connect: bool) -> dict[str, Any]:
        return self._call("POST", "webhooks", {"url": url, "secret": secret, "connect": connect})

    def fault(self, *, method: str, path_prefix: str, kind: str, count: int = 1, delay: float = 5.0) -> None:
        body = {"method": method, "path_prefix": path_prefix, "kind": kind, "count": count, "delay": delay}
        self._call("POST", "faults", body)

    def configure(self, *, auto_connected_payouts: bool | None = None) -> dict[str, Any]:
        return self._call("POST", "config", {"auto_connected_payouts": auto_connected_payouts})

    def clock_advance(self, *, seconds: int) -> int:
        return int(self._call("POST", "clock", {"advance": seconds})["now"])

    def checkout_pay(self, *, session_id: str, outcome: str = "paid") -> dict[str, Any]:
        return self._call("POST", f"checkout/{session_id}/pay", {"outcome": outcome})

    def checkout_settle(self, *, session_id: str, success: bool) -> dict[str, Any]:
        return self._call("POST", f"checkout/{session_id}/settle", {"success": success})

    def account_onboard(self, *, account_id: str, complete: bool = True) -> dict[str, Any]:
        return self._call("POST", f"accounts/{account_id}/onboard", {"complete": complete})

    def charge_dispute(self, *, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        return self._call("POST", f"charges/{charge_id}/dispute", {"amount": amount})

    def dispute_close(self, *, dispute_id: str, won: bool) -> dict[str, Any]:
        return self._call("POST", f"disputes/{dispute_id}/close", {"won": won})

    def balance_add(self, *, amount: int, currency: str) -> dict[str, Any]:
        return self._call("POST", "balance", {"amount": amount, "currency": currency})

    def deliver(self) -> list[dict[str, Any]]:
        return self._call("POST", "deliver")["deliveries"]

    def take_deliveries(self) -> list[dict[str, Any]]:
        """Queued deliveries as JSON: payload is the event body as text, headers include the signature."""
        return self._call("POST", "deliveries/take")["deliveries"]

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.base_url}/_sandbox/{route}",
            data=data,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - scheme checked
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(_error_message(exc), status=exc.code) from exc
        except (OSError, ValueError) as exc:
            raise SandboxControlError(f"Stripe sandbox at {self.base_url} unavailable: {exc}") from exc


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code} from the Stripe sandbox"
