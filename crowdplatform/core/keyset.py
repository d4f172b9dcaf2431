"""Keyset pagination for server-rendered lists that grow without bound.

Unlike page numbers it needs no COUNT(*) and stays fast at any depth. Pages
are positioned by id: `?after=<id>` or `?before=<id>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Model, QuerySet
from django.http import QueryDict

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class KeysetPage(Generic[M]):
    items: list[M]
    previous_query: str | None  # query string of the page before this one, or None
    next_query: str | None


@dataclass(frozen=True)
class _Direction:
    order: str  # how the list reads
    forward_param: str  # the query parameter that moves to the next page
    backward_param: str


NEWEST_FIRST = _Direction(order="-id", forward_param="before", backward_param="after")
OLDEST_FIRST = _Direction(order="id", forward_param="after", backward_param="before")


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _beyond(param: str, cursor: int) -> dict[str, int]:
    return {"id__lt" if param == "before" else "id__gt": cursor}


def keyset_page(
    queryset: QuerySet[M], params: QueryDict, *, size: int = 50, newest_first: bool = True
) -> KeysetPage[M]:
    direction = NEWEST_FIRST if newest_first else OLDEST_FIRST
    forward = _positive_int(params.get(direction.forward_param))
    backward = _positive_int(params.get(direction.backward_param))
    if backward is not None:
        reverse_order = direction.order.removeprefix("-") if direction.order.startswith("-") else f"-{direction.order}"
        rows = list(queryset.filter(**_beyond(direction.backward_param, backward)).order_by(reverse_order)[: size + 1])
        has_previous, has_next = len(rows) > size, True
        items = list(reversed(rows[:size]))
    else:
        ordered = queryset.order_by(direction.order)
        if forward is not None:
            ordered = ordered.filter(**_beyond(direction.forward_param, forward))
        rows = list(ordered[: size + 1])
        has_previous, has_next = forward is not None, len(rows) > size
        items = rows[:size]
    return KeysetPage(
        items=items,
        previous_query=_with(params, direction.backward_param, items[0].pk) if has_previous and items else None,
        next_query=_with(params, direction.forward_param, items[-1].pk) if has_next and items else None,
    )


def _with(params: QueryDict, key: str, cursor: int) -> str:
    query = params.copy()
    query.pop("before", None)
    query.pop("after", None)
    query[key] = str(cursor)
    return "?" + query.urlencode()
