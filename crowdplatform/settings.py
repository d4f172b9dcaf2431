"""Settings for crowdplatform, read from the environment (see README "Configuration").

Every knob is an environment variable read through the typed helpers in
`crowdplatform.env`; nothing secret lives in the code.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from crowdplatform.env import env_bool, env_int, env_list, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key(debug=DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "crowdplatform.core",
    "crowdplatform.accounts",
    "crowdplatform.raters",
    "evaluations",
    "payments",
    "crowdplatform.quality",
    "crowdplatform.integrity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "crowdplatform.urls"
WSGI_APPLICATION = "crowdplatform.wsgi.application"
ASGI_APPLICATION = "crowdplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
FORM_RENDERER = "crowdplatform.core.forms.FormRenderer"

# --- Database -----------------------------------------------------------------------------------
# SQLite is the embedded default so `make run` needs nothing installed; production and CI use
# PostgreSQL through DATABASE_URL (postgres://user:password@host:5432/name).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling and rate limits keep their counters here) --------------------------------
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "crowdplatform.accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "crowdplatform.accounts.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[crowdplatform] "
# allauth keeps these counters in the cache; the keys are allauth's own action names.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
}

# --- Email --------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "crowdplatform <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The API key comes first so that an unauthenticated request gets 401 with
    # `WWW-Authenticate: Bearer` rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crowdplatform.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "crowdplatform.core.pagination.CursorPagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "crowdplatform.core.throttling.ActorRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "actor": env_str("API_THROTTLE_ACTOR", "3000/hour"),
        "anon": env_str("API_THROTTLE_ANON", "120/hour"),
    },
    "EXCEPTION_HANDLER": "crowdplatform.core.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "crowdplatform API",
    "DESCRIPTION": (
        "Private paired-comparison evaluations of AI systems. Authenticate with an organization "
        "API key: `Authorization: Bearer <key>`. Every error has the shape "
        '`{"error": {"status", "code", "message", "fields"}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# --- Celery -------------------------------------------------------------------------------------
# Without a broker, tasks run eagerly in-process, so `make run` needs no Redis.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
from celery.schedules import crontab  # noqa: E402 (only the beat schedule needs it)

CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Lapsed leases already return to the pool when they expire (assignment ignores them);
    # this marks them expired so the task list and progress pages say so.
    "evaluations-expire-lapsed-leases": {"task": "evaluations.tasks.leases_expire", "schedule": 60.0},
    # Pay: pending pay past the review window becomes available; the fair-pay floor is topped up.
    "payments-earnings-release": {"task": "payments.tasks.earnings_release_due", "schedule": 900.0},
    "payments-floor-topups": {"task": "payments.tasks.floor_topups_run", "schedule": 3600.0},
    # Stripe events deferred (waiting for an earlier event) or failed are handled again.
    "payments-stripe-events-retry": {"task": "payments.tasks.stripe_events_retry", "schedule": 300.0},
    # Rater payouts: the weekly batch, the retry of payouts whose next attempt is due, and the
    # nightly comparison of the ledger with Stripe.
    "payments-payout-batch-weekly": {
        "task": "payments.tasks.payout_batch_run_scheduled",
        "schedule": crontab(day_of_week="mon", hour=9, minute=0),
    },
    "payments-payouts-send-due": {"task": "payments.tasks.payouts_send_due", "schedule": 60.0},
    "payments-reconciliation-daily": {
        "task": "payments.tasks.reconciliation_run",
        "schedule": crontab(hour=3, minute=0),
    },
    # Quality signals: an incremental refresh (a full one every few hours), then the rules on the
    # raters whose signals changed. Every QUALITY_REFRESH_SECONDS (the setting below; read here too).
    "quality-refresh": {
        "task": "crowdplatform.quality.tasks.quality_refresh",
        "schedule": float(env_int("QUALITY_REFRESH_SECONDS", 300)),
    },
    # Public leaderboards: publish ended windows' results, apply the retirement rule, release ended periods.
    "integrity-publish": {"task": "crowdplatform.integrity.tasks.integrity_publish", "schedule": 900.0},
}
CELERY_TIMEZONE = "UTC"

# --- Internationalisation and static files -------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
MEDIA_ROOT = BASE_DIR / "var" / "media"
# Files only staff may read (raters' credential documents): never under a public URL, served by a
# staff-only view. Point PRIVATE_MEDIA_ROOT at a volume that is backed up.
PRIVATE_MEDIA_ROOT = Path(env_str("PRIVATE_MEDIA_ROOT", str(BASE_DIR / "var" / "private")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
    },
}
CREDENTIAL_DOCUMENT_MAX_BYTES = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security (strict unless DEBUG; `manage.py check --deploy` passes with production values) ----
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Only behind a proxy that sets X-Forwarded-Proto and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /healthz is polled by load balancers over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # The Stripe SDK logs every request at INFO; our own code logs what matters about payments.
    "loggers": {"stripe": {"level": "WARNING"}},
}

# --- Product settings ---------------------------------------------------------------------------
# Where `seed_demo` keeps the demo credentials it generated, so a second run can print them again.
DEMO_CREDENTIALS_FILE = Path(env_str("DEMO_CREDENTIALS_FILE", str(BASE_DIR / "var" / "demo-credentials.json")))
# How many votes the demo's simulated crowd casts in the demo study (seed_demo).
DEMO_STUDY_VOTES = env_int("DEMO_STUDY_VOTES", 1500)
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# Key for pseudonymous rater ids shown to clients (defaults to SECRET_KEY). Changing it changes every id.
PSEUDONYM_KEY = env_str("PSEUDONYM_KEY", "")
INVITATION_TTL_DAYS = 14
# Studies: item uploads (JSONL or CSV) and the platform's fair-pay floor for the implied hourly rate
# of a study (pay per task against its estimated time), in cents per hour.
ITEMS_UPLOAD_MAX_BYTES = env_int("ITEMS_UPLOAD_MAX_BYTES", 50 * 1024 * 1024)
ITEMS_LINE_MAX_BYTES = env_int("ITEMS_LINE_MAX_BYTES", 1024 * 1024)
PAY_FLOOR_CENTS_PER_HOUR = env_int("PAY_FLOOR_CENTS_PER_HOUR", 1500)
TASK_LEASE_SECONDS_DEFAULT = 600
# Leaderboards mark a system "provisional" below this many counted votes. At even odds the standard
# error of a Bradley-Terry logit is about 2/sqrt(votes): at 100 votes that is ~35 rating points, a 95%
# interval of roughly ±70, so below it a system's place can still move a lot with a few more votes.
LEADERBOARD_PROVISIONAL_VOTES = env_int("LEADERBOARD_PROVISIONAL_VOTES", 100)

# The public transparency report (anyone, no login) aggregates a study's whole history: ~2 s and ~4
# CPU-seconds at 1M votes (benchmarks/transparency_report.py). It is cached per leaderboard for this long;
# a publication, release, retirement, submission or policy version shows at once (they are in the key).
TRANSPARENCY_REPORT_CACHE_SECONDS = env_int("TRANSPARENCY_REPORT_CACHE_SECONDS", 60)
# A released file's SHA-256 is remembered while its size and modification time stay the same; the
# periodic publishing run re-reads every file anyway.
FILE_DIGEST_CACHE_SECONDS = env_int("FILE_DIGEST_CACHE_SECONDS", 3600)

# --- Payments (ledger, pay rules, Stripe) --------------------------------------------------------
# Pay is pending this long after a vote (quality review may hold or reject it), then available.
PAY_REVIEW_WINDOW_HOURS = env_int("PAY_REVIEW_WINDOW_HOURS", 72)
# The platform's fee on each task, in basis points of the rater's pay (a study may set its own).
PLATFORM_FEE_BPS_DEFAULT = env_int("PLATFORM_FEE_BPS_DEFAULT", 2000)
# Payout batches send each rater's available balance at or above this minimum as one transfer.
PAYOUT_MINIMUM_CENTS = env_int("PAYOUT_MINIMUM_CENTS", 1000)
# A study launches only with funds for this many tasks (or all it has left, if fewer).
LAUNCH_FUNDED_TASKS_MIN = env_int("LAUNCH_FUNDED_TASKS_MIN", 10)
BONUS_MAX_CENTS = env_int("BONUS_MAX_CENTS", 100_000)
FUNDING_MIN_CENTS = 500
FUNDING_MAX_CENTS = 10_000_000
# Stripe: with no secret key the platform talks to the local sandbox (`manage.py stripe_sandbox`,
# started by `make run`); with real keys it talks to Stripe and the sandbox stays off.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_SANDBOX_PORT = env_int("STRIPE_SANDBOX_PORT", 12111)
STRIPE_API_BASE = env_str(
    "STRIPE_API_BASE", "https://api.stripe.com" if STRIPE_SECRET_KEY else f"http://127.0.0.1:{STRIPE_SANDBOX_PORT}"
)
STRIPE_SECRET_KEY = STRIPE_SECRET_KEY or "sk_test_sandbox"
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "whsec_sandbox_platform")
STRIPE_CONNECT_WEBHOOK_SECRET = env_str("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_sandbox_connect")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
# Stripe's fee for a chargeback, used when a dispute event does not carry its balance transaction.
STRIPE_DISPUTE_FEE_CENTS = env_int("STRIPE_DISPUTE_FEE_CENTS", 1500)
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 30)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
STRIPE_CONNECT_COUNTRY = env_str("STRIPE_CONNECT_COUNTRY", "US")

# --- Quality (crowdplatform/quality) -------------------------------------------------------------
# Platform defaults for the quality rules; a study overrides any of them in `Study.quality_rules`
# (same keys). "mode": "auto" acts at once; "propose" puts the action in the staff review queue.
QUALITY_RULES_DEFAULT: dict[str, dict[str, object]] = {
    # Toloka's example, Prolific's "fair attention checks": at least 10 gold tasks, under 60% right.
    "gold_accuracy": {"min_gold": 10, "below": 0.6, "actions": ["pause", "hold_pay"], "mode": "auto"},
    # Prolific's only speed rule: more than 3 SD below the study's mean time. Warn first, then exclude.
    "too_fast": {"sd": 3.0, "min_fast": 3, "actions": ["warn"], "repeat_actions": ["exclude_votes"], "mode": "auto"},
    # "A" chosen far more (or less) than half the time: a two-sided binomial test.
    "position_bias": {"min_votes": 30, "p_below": 0.001, "actions": ["warn"], "mode": "propose"},
    # The same answer many times in a row.
    "straight_lining": {"run_at_least": 15, "actions": ["warn"], "mode": "propose"},
    # Rarely agreeing with the other raters of the same item pairs (never acted on alone: an expert
    # may disagree with a careless majority, so staff look first).
    "low_agreement": {"min_votes": 30, "below": 0.3, "actions": ["warn"], "mode": "propose"},
}
QUALITY_REFRESH_SECONDS = env_int("QUALITY_REFRESH_SECONDS", 300)
