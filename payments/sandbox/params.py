"""Checking request parameters the way Stripe does: same messages, codes and `param` names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from payments.sandbox.errors import ApiError, missing

# Stripe's ceiling for an amount in minor units ($999,999.99).
MAX_AMOUNT = 99_999_999
# Currencies the sandbox accepts; real Stripe knows more, the platform needs only a few.
CURRENCIES = frozenset(
    [
        "usd",
        "eur",
        "gbp",
        "cad",
        "aud",
        "nzd",
        "chf",
        "sek",
        "nok",
        "dkk",
        "pln",
        "czk",
        "huf",
        "ron",
        "bgn",
        "sgd",
        "hkd",
        "jpy",
        "krw",
        "mxn",
        "brl",
        "inr",
    ]
)
ZERO_DECIMAL = frozenset({"jpy", "krw"})
# Smallest charge Stripe accepts per settlement currency, in minor units.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "nzd": 50, "chf": 50, "jpy": 50}
_INTEGER = re.compile(r"^-?\d+$")
_METADATA_KEYS_MAX = 50
_METADATA_KEY_LENGTH = 40
_METADATA_VALUE_LENGTH = 500


def known(params: dict[str, Any], allowed: Iterable[str]) -> None:
    """Refuse parameters this endpoint doesn't take, as Stripe does, so typos can't pass silently."""
    allowed = set(allowed) | {"expand"}
    for name in params:
        if name not in allowed:
            raise ApiError(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def string(params: dict[str, Any], name: str, *, required: bool = False, param: str | None = None) -> str | None:
    value = params.get(name)
    param = param or name
    if value is None or value == "":
        if required:
            raise missing(param)
        return None
    if not isinstance(value, str):
        raise ApiError(f"Invalid string: {value!r}", param=param)
    return value


def integer(value: Any, *, param: str) -> int:
    if not isinstance(value, str | int) or isinstance(value, bool) or not _INTEGER.match(str(value)):
        raise ApiError(f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    return int(value)


def amount(
    params: dict[str, Any], name: str = "amount", *, required: bool = True, param: str | None = None
) -> int | None:
    """A positive integer in minor units, at most MAX_AMOUNT."""
    param = param or name
    if params.get(name) in (None, ""):
        if required:
            raise missing(param)
        return None
    value = integer(params[name], param=param)
    if value < 1:
        raise ApiError("This value must be greater than or equal to 1.", code="parameter_invalid_integer", param=param)
    if value > MAX_AMOUNT:
        raise ApiError(
            f"This value must be less than or equal to {MAX_AMOUNT}.", code="parameter_invalid_integer", param=param
        )
    return value


def currency(params: dict[str, Any], name: str = "currency", *, param: str | None = None) -> str:
    param = param or name
    value = string(params, name, required=True, param=param) or ""
    if value.lower() not in CURRENCIES:
        raise ApiError(f"Invalid currency: {value.lower()}.", code="invalid_currency", param=param)
    return value.lower()


def metadata(params: dict[str, Any], name: str = "metadata", *, param: str | None = None) -> dict[str, str]:
    param = param or name
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ApiError("Invalid object", param=param)
    if len(value) > _METADATA_KEYS_MAX:
        raise ApiError(f"Invalid {param}: You can specify up to 50 keys.", param=param)
    for key, item in value.items():
        if not isinstance(item, str):
            raise ApiError(f"Invalid {param}[{key}]: metadata values must be strings", param=f"{param}[{key}]")
        if len(key) > _METADATA_KEY_LENGTH:
            raise ApiError(f"Invalid {param}: keys can be at most 40 characters long.", param=param)
        if len(item) > _METADATA_VALUE_LENGTH:
            raise ApiError(f"Invalid {param}[{key}]: must be at most 500 characters", param=f"{param}[{key}]")
    # `metadata[k]=` unsets a key on update; on create it simply isn't stored.
    return {key: item for key, item in value.items() if item != ""}


def boolean(value: Any, *, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ApiError(f"Invalid boolean: {value}", param=param)


def url(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = string(params, name, required=required)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError("Not a valid URL", code="url_invalid", param=name)
    return value


def hash_param(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ApiError("Invalid object", param=name)
    return value


def expand(params: dict[str, Any]) -> list[str]:
    value = params.get("expand")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError("Invalid array", param="expand")
    return value


def string_list(params: dict[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError("Invalid array", param=name)
    return value


def format_amount(value: int, currency_code: str) -> str:
    """`1234, "usd"` -> `$12.34`-style text for pages and messages (no locale rules)."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency_code, "")
    if currency_code in ZERO_DECIMAL:
        return f"{sign}{symbol}{value:,} {currency_code.upper()}"
    return f"{sign}{symbol}{value // 100:,}.{value % 100:02d} {currency_code.upper()}"
