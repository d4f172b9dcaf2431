"""Stable pseudonymous ids: the same person gets the same id within one scope
(a campaign, a study) and unrelated ids across scopes, and the id reveals nothing.

An HMAC keyed with a secret, so ids cannot be recomputed from database ids
by anyone without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def pseudonym(*, scope: str, value: int | str, length: int = 16) -> str:
    key = (settings.PSEUDONYM_KEY or settings.SECRET_KEY).encode()
    digest = hmac.new(key, f"{scope}:{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:length]
