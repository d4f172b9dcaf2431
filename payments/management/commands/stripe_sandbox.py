"""`manage.py stripe_sandbox`: run the local Stripe sandbox in the foreground, wired to this site's webhooks."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.sandbox import SandboxServer


class Command(BaseCommand):
    help = (
        "Run the Stripe sandbox (a local stand-in for the Stripe API, Connect onboarding and Checkout) until "
        "interrupted, delivering signed webhooks to this site."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=None, help="Port (default settings.STRIPE_SANDBOX_PORT).")
        parser.add_argument("--webhook-url", default=None, help="Platform events endpoint.")
        parser.add_argument("--connect-webhook-url", default=None, help="Connect events endpoint.")

    def handle(
        self,
        *args: Any,
        host: str = "127.0.0.1",
        port: int | None = None,
        webhook_url: str | None = None,
        connect_webhook_url: str | None = None,
        **options: Any,
    ) -> None:
        api_host = urlsplit(settings.STRIPE_API_BASE).hostname or ""
        if api_host == "stripe.com" or api_host.endswith(".stripe.com"):
            raise CommandError(
                f"STRIPE_API_BASE is {settings.STRIPE_API_BASE}: real Stripe keys are configured, so the sandbox "
                "would not be used. Unset STRIPE_SECRET_KEY (and STRIPE_API_BASE) to develop against the sandbox."
            )
        site = settings.SITE_URL.rstrip("/")
        webhook_url = webhook_url or f"{site}/payments/stripe/webhook/"
        connect_webhook_url = connect_webhook_url or f"{site}/payments/stripe/connect-webhook/"
        self.server = server = SandboxServer(
            host=host,
            port=settings.STRIPE_SANDBOX_PORT if port is None else port,
            auto_deliver=True,
            log=self._log,
        )
        server.webhook_register(url=webhook_url, secret=settings.STRIPE_WEBHOOK_SECRET, connect=False)
        server.webhook_register(url=connect_webhook_url, secret=settings.STRIPE_CONNECT_WEBHOOK_SECRET, connect=True)
        try:
            base_url = server.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{server.port}: {exc}") from exc
        self.stdout.write(f"Stripe sandbox listening on {base_url}")
        self.stdout.write(f"  platform webhooks -> {webhook_url}")
        self.stdout.write(f"  Connect webhooks  -> {connect_webhook_url}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            self.stderr.write(f"Warning: listening on {host}; the /_sandbox/ control endpoints have no authentication.")
        if base_url.rstrip("/") != settings.STRIPE_API_BASE.rstrip("/"):
            self.stderr.write(f"Note: STRIPE_API_BASE is {settings.STRIPE_API_BASE}, so this site won't call it.")
        try:
            self.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            self.stdout.write("Stripe sandbox stopped.")

    def wait(self) -> None:
        """Block until interrupted (Ctrl+C). Separate so tests can return at once."""
        threading.Event().wait()

    def _log(self, message: str) -> None:
        self.stdout.write(message)
