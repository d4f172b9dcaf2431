from __future__ import annotations

from rest_framework.pagination import CursorPagination as BaseCursorPagination


class CursorPagination(BaseCursorPagination):
    """Newest first, stable under inserts, cheap at any depth.

    Views may set `ordering` to sort on another column; the first column must
    be (nearly) unique and indexed.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
