"""Keyset ("older / newer") pagination for server-rendered lists that grow without bound.

Unlike page numbers it needs no COUNT(*) and stays fast at any depth.
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
    newer_query: str | None  # query string for the previous (newer) page, or None
    older_query: str | None


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def keyset_page(queryset: QuerySet[M], params: QueryDict, *, size: int = 50) -> KeysetPage[M]:
    """A page of `queryset` by descending id, positioned by `?before=` or `?after=`."""
    before = _positive_int(params.get("before"))
    after = _positive_int(params.get("after"))
    if after is not None:
        items = list(reversed(queryset.filter(id__gt=after).order_by("id")[: size + 1]))
        has_newer = len(items) > size
        items = items[-size:] if has_newer else items
        has_older = True
    else:
        rows = queryset.order_by("-id")
        if before is not None:
            rows = rows.filter(id__lt=before)
        items = list(rows[: size + 1])
        has_older = len(items) > size
        items = items[:size]
        has_newer = before is not None
    return KeysetPage(
        items=items,
        newer_query=_with(params, after=items[0].pk) if has_newer and items else None,
        older_query=_with(params, before=items[-1].pk) if has_older and items else None,
    )


def _with(params: QueryDict, **position: int) -> str:
    query = params.copy()
    query.pop("before", None)
    query.pop("after", None)
    for key, value in position.items():
        query[key] = str(value)
    return "?" + query.urlencode()
