"""Who is acting: a user, an organization API key, or nobody (the system)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from django.contrib.auth.models import AnonymousUser

if TYPE_CHECKING:
    from crowdplatform.accounts.models import ApiKey, User


class ApiKeyPrincipal:
    """Stands in for `request.user` when a request authenticates with an API key.

    A key acts for its organization with a member's rights; it is nobody's
    user account, so it has no id and is never staff.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    @property
    def organization_id(self) -> int:
        return self.api_key.organization_id

    def __str__(self) -> str:
        return f"API key {self.api_key.name!r} (cpk_{self.api_key.prefix})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKeyPrincipal) and other.api_key.pk == self.api_key.pk

    def __hash__(self) -> int:
        return hash(("api_key", self.api_key.pk))


Actor: TypeAlias = "User | ApiKeyPrincipal | AnonymousUser | None"


def actor_user(actor: Actor) -> User | None:
    """The user account behind an actor, if it is one."""
    if actor is None or isinstance(actor, (ApiKeyPrincipal, AnonymousUser)):
        return None
    return actor
