from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from crowdplatform.accounts.models import AccountType, Role
from crowdplatform.accounts.services import api_key_create
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

REDIS_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
SERVICES_REQUIRED = os.environ.get("CROWDPLATFORM_REQUIRE_SERVICES") == "1"


def redis_reachable(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """CI must exercise PostgreSQL and Redis: refuse to run without them there."""
    if not SERVICES_REQUIRED:
        return
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.exit(f"CROWDPLATFORM_REQUIRE_SERVICES=1 but the database engine is {engine}", returncode=3)
    if not redis_reachable():
        pytest.exit(f"CROWDPLATFORM_REQUIRE_SERVICES=1 but Redis does not answer at {REDIS_URL}", returncode=3)


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis; skipped locally without one, never in CI (checked at session start)."""
    if not redis_reachable():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle and rate-limit counters must not leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _demo_credentials_in_tmp(settings, tmp_path):
    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def rater(db):
    from crowdplatform.raters.models import RaterProfile

    user = UserFactory(account_type=AccountType.RATER)
    RaterProfile.objects.create(user=user)
    return user


@pytest.fixture
def staff_user(db):
    return UserFactory(account_type=AccountType.CLIENT, is_staff=True, is_superuser=True)


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Alpha Lab", slug="alpha-lab")


@pytest.fixture
def owner(organization):
    return MembershipFactory(organization=organization, role=Role.OWNER).user


@pytest.fixture
def member(organization):
    return MembershipFactory(organization=organization, role=Role.MEMBER).user


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Beta Lab", slug="beta-lab")


@pytest.fixture
def other_owner(other_organization):
    return MembershipFactory(organization=other_organization, role=Role.OWNER).user


@pytest.fixture
def api_key_pair(organization, owner):
    """(ApiKey, raw key) for `organization`."""
    return api_key_create(organization=organization, name="script", actor=owner)
