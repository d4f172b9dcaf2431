"""Stripe-shaped API errors raised by the sandbox engine and turned into HTTP responses by the server."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """One Stripe error response: `{"error": {"type", "code", "message", "param"}}` with its status.

    `validation` tells the idempotency layer whether the endpoint had started executing: like
    Stripe, a request refused while its parameters were checked stores no idempotent result and
    may be retried with the same key, while an error met while executing is stored and replayed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        validation: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param
        self.validation = validation

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def missing(param: str) -> ApiError:
    return ApiError(f"Missing required param: {param}.", code="parameter_missing", param=param)


def not_found(noun: str, object_id: str, *, param: str = "id", status: int = 404) -> ApiError:
    return ApiError(f"No such {noun}: '{object_id}'", status=status, code="resource_missing", param=param)


def executing(message: str, *, code: str | None = None, param: str | None = None) -> ApiError:
    """An error found while executing: stored under the idempotency key, as Stripe does."""
    return ApiError(message, code=code, param=param, validation=False)
