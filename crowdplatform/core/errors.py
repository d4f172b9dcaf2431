"""Errors that domain functions raise when a request cannot be honoured.

Views turn them into a form error or a message; the API turns them into the
standard error shape with `status` and `code`.
"""

from __future__ import annotations


class ApplicationError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}


class ConflictError(ApplicationError):
    """The request is well-formed but clashes with the current state."""

    status = 409
    code = "conflict"
