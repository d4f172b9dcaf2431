from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from crowdplatform.accounts.principals import ApiKeyPrincipal

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ActorRateThrottle(SimpleRateThrottle):
    """One budget per API key and one per user (rate: settings "actor").

    Anonymous requests are left to DRF's AnonRateThrottle.
    """

    scope = "actor"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        actor = request.user
        if isinstance(actor, ApiKeyPrincipal):
            ident = f"key-{actor.api_key.pk}"
        elif actor is not None and actor.is_authenticated:
            ident = f"user-{actor.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}
