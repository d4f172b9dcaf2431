"""Test settings: the real settings, with what tests need changed and nothing else."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# The real settings refuse to start without a secret while DEBUG is off, as tests run.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from crowdplatform.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; never outside tests
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEMO_STUDY_VOTES = 30  # the demo crowd's full 1,500 votes take ~20 s; tests need only a few

# Private uploads go to a throwaway folder, never the checkout. (File fields bind their storage when
# models load, so this is set here rather than per test.)
PRIVATE_MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="crowdplatform-private-"))
atexit.register(shutil.rmtree, PRIVATE_MEDIA_ROOT, ignore_errors=True)
STORAGES = {
    **STORAGES,  # noqa: F405
    "private": {**STORAGES["private"], "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None}},  # noqa: F405
}
