"""Stripe's webhook endpoints: the platform's events and Connect events, each with its own secret.

They take the raw body (the signature covers those exact bytes) and answer as Stripe expects:
2xx when the event needs no redelivery, 400 for a delivery we must not trust, 500 when handling
failed and Stripe should try again.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.models import WebhookEndpoint
from payments.webhooks import webhook_receive


@csrf_exempt  # Stripe cannot send a CSRF token; the signature authenticates the request
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, WebhookEndpoint.PLATFORM)


@csrf_exempt
@require_POST
def stripe_connect_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, WebhookEndpoint.CONNECT)


def _receive(request: HttpRequest, endpoint: str) -> JsonResponse:
    result = webhook_receive(
        payload=request.body, sig_header=request.headers.get("Stripe-Signature", ""), endpoint=endpoint
    )
    body: dict[str, str] = {"detail": result.detail}
    if result.event is not None:
        body.update(event=result.event.event_id, status=result.event.status)
    return JsonResponse(body, status=result.status_code)
