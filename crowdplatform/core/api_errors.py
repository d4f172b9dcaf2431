"""One JSON shape for every API error:

    {"error": {"status": 404, "code": "not_found", "message": "Not found.", "fields": {}}}

`fields` maps an input field to its messages when the input was invalid.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from crowdplatform.core.errors import ApplicationError

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    500: "server_error",
}


def error_body(*, status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "fields": fields or {}}}


def error_json_response(*, status: int, message: str, code: str | None = None) -> JsonResponse:
    """For errors raised outside DRF (unknown /api/ URL, a crash)."""
    return JsonResponse(
        error_body(status=status, code=code or STATUS_CODES.get(status, "error"), message=message), status=status
    )


class _ApplicationApiError(exceptions.APIException):
    def __init__(self, error: ApplicationError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status
        self.fields = error.fields


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        exc = _ApplicationApiError(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None  # not an API error: Django's 500 handler answers, in the same shape
    response.data = error_body(status=response.status_code, **_describe(exc))
    return response


def _describe(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return {"code": "invalid", "message": "The input is not valid; see fields.", "fields": _plain(fields)}
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    fields = getattr(exc, "fields", None) or {}
    message = str(exc.detail)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        fields = {"retry_after": [str(int(exc.wait))]}
    return {"code": code, "message": message, "fields": fields}


def _plain(detail: Any) -> Any:
    """ErrorDetail objects as plain strings, keeping the nesting."""
    if isinstance(detail, dict):
        return {key: _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(value) for value in detail]
    return str(detail)
