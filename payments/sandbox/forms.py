"""Stripe's bracket notation for form bodies and query strings, parsed into nested dicts and lists.

The SDK encodes `{"metadata": {"k": "v"}, "expand": ["a"]}` as `metadata[k]=v&expand[0]=a`; curl users
write `expand[]=a`. Both forms are accepted. Values stay strings, as on the wire: each endpoint
decides what is an integer or a boolean, so it can refuse `amount=1.5` the way Stripe does.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
# Keys under these parents are user data: `metadata[0]=x` is a key named "0", never a list index.
_FREE_FORM = frozenset({"metadata"})


class FormError(ValueError):
    """The body cannot be read as Stripe-style form parameters."""


def parse_query(text: str) -> dict[str, Any]:
    """Parse an `application/x-www-form-urlencoded` string (body or query string)."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise FormError(str(exc)) from exc
    return parse_pairs(pairs)


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value)
    return _listify(root, parent=None)


def _split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise FormError(f"Invalid parameter name: {key}")
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _assign(node: dict[str, Any], parts: list[str], value: str) -> None:
    head, rest = parts[0], parts[1:]
    if head == "":
        # `expand[]=a&expand[]=b`: each empty index appends a new element.
        head = str(_next_index(node))
    if not rest:
        if isinstance(node.get(head), dict):
            raise FormError(f"Invalid parameter: {head} is both a value and a hash")
        node[head] = value
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise FormError(f"Invalid parameter: {head} is both a value and a hash")
    if rest[0] == "" and len(rest) > 1:
        # `line_items[][quantity]=1`: reuse the last element until one of its keys repeats (Rack's rule).
        last = str(_next_index(child) - 1)
        if last != "-1" and isinstance(child.get(last), dict) and rest[1] not in child[last]:
            rest = [last, *rest[1:]]
    _assign(child, rest, value)


def _next_index(node: dict[str, Any]) -> int:
    indexes = [int(key) for key in node if key.isdigit()]
    return max(indexes) + 1 if indexes else 0


def _listify(node: Any, *, parent: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    if parent not in _FREE_FORM and node and all(key.isdigit() for key in node):
        return [_listify(node[key], parent=None) for key in sorted(node, key=int)]
    return {key: _listify(value, parent=key) for key, value in node.items()}
