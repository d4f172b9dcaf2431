"""Settings parsing: the typed helpers, and the real settings module under given environments."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from crowdplatform.env import DEVELOPMENT_SECRET_KEY, env_bool, env_int, env_list, env_str, secret_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("false", False), ("", False)],
)
def test_env_bool_reads_words(raw, expected):
    assert env_bool("X", not expected, environ={"X": raw}) is expected


def test_env_bool_uses_default_when_unset():
    assert env_bool("X", True, environ={}) is True


def test_env_bool_refuses_unknown_words():
    with pytest.raises(ImproperlyConfigured, match="X must be one of"):
        env_bool("X", False, environ={"X": "maybe"})


def test_env_int():
    assert env_int("N", 7, environ={}) == 7
    assert env_int("N", 7, environ={"N": " 42 "}) == 42
    with pytest.raises(ImproperlyConfigured, match="N must be an integer, not 'ten'"):
        env_int("N", 7, environ={"N": "ten"})


def test_env_list_splits_and_drops_blanks():
    assert env_list("H", ["a"], environ={}) == ["a"]
    assert env_list("H", ["a"], environ={"H": "x.org, y.org,,"}) == ["x.org", "y.org"]
    assert env_list("H", ["a"], environ={"H": ""}) == []


def test_env_str():
    assert env_str("S", "d", environ={}) == "d"
    assert env_str("S", "d", environ={"S": "v"}) == "v"


def test_secret_key_rules():
    assert secret_key(debug=True, environ={}) == DEVELOPMENT_SECRET_KEY
    assert secret_key(debug=False, environ={"SECRET_KEY": "s3cret"}) == "s3cret"
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set when DEBUG is off"):
        secret_key(debug=False, environ={})
    with pytest.raises(ImproperlyConfigured):
        secret_key(debug=False, environ={"SECRET_KEY": "   "})


# --- The settings module itself, imported fresh in a subprocess -----------------------------------

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": settings.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(settings.DATABASES["default"]["NAME"]),
    "EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "BROKER": settings.CELERY_BROKER_URL,
    "EMAIL_BACKEND": settings.EMAIL_BACKEND,
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
}))
"""


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "DATABASE", "CELERY"))}
    clean.pop("SECRET_KEY", None)
    clean.pop("DEBUG", None)
    clean.pop("CACHE_URL", None)
    clean.update({"DJANGO_SETTINGS_MODULE": "crowdplatform.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_settings_defaults_with_debug_on():
    result = load_settings(DEBUG="1")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "DEBUG": True,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "ENGINE": "django.db.backends.sqlite3",
        "DB_NAME": str(ROOT / "db.sqlite3"),
        "EAGER": True,
        "BROKER": "",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "CACHE": "django.core.cache.backends.locmem.LocMemCache",
        "SSL_REDIRECT": False,
    }


@pytest.mark.slow
def test_settings_from_production_environment():
    result = load_settings(
        SECRET_KEY="k" * 60,
        ALLOWED_HOSTS="crowd.example.org",
        DATABASE_URL="postgres://app:pw@db.internal:5432/crowd",
        CELERY_BROKER_URL="redis://redis.internal:6379/0",
        CACHE_URL="redis://redis.internal:6379/1",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["crowd.example.org"],
        "ENGINE": "django.db.backends.postgresql",
        "DB_NAME": "crowd",
        "EAGER": False,
        "BROKER": "redis://redis.internal:6379/0",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "CACHE": "django.core.cache.backends.redis.RedisCache",
        "SSL_REDIRECT": True,
    }


@pytest.mark.slow
def test_settings_refuse_to_start_without_secret_key_when_debug_is_off():
    result = load_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


@pytest.mark.slow
def test_settings_refuse_a_malformed_boolean():
    result = load_settings(DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


@pytest.mark.slow
def test_check_deploy_reports_nothing_with_production_values():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "DEBUG", "SECRET"))}
    env.update(
        DJANGO_SETTINGS_MODULE="crowdplatform.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="crowd.example.org",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


@pytest.mark.slow
def test_manage_py_reports_a_configuration_error_plainly():
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Configuration error: SECRET_KEY must be set when DEBUG is off.\n"
        "For local development, set DEBUG=1 (see README, Configuration).\n"
    )


@pytest.mark.slow
def test_manage_py_honours_the_settings_option():
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings=tests.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
