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


def reason_checked(reason: str, *, field: str = "reason", minimum: int = 10, maximum: int | None = None) -> str:
    """A reason a person will read (a rejection, a hold, a staff answer): stripped, long enough to
    say something, and not unbounded. ApplicationError names the field otherwise."""
    reason = (reason or "").strip()
    if len(reason) < minimum:
        raise ApplicationError(
            f"Give a reason the rater can understand (at least {minimum} characters).",
            code="reason_required",
            fields={field: ["Too short."]},
        )
    if maximum is not None and len(reason) > maximum:
        raise ApplicationError(
            f"Keep it under {maximum} characters.", code="reason_too_long", fields={field: ["Too long."]}
        )
    return reason
