"""Settings, read from the environment. Defaults run the embedded demo on one machine."""

import logging
import os
import secrets
from pathlib import Path

import dj_database_url
from corsheaders import defaults as corsheaders_defaults

from delivery.logcontext import JSON_FORMATTER
from devtools import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Folder for the embedded servers, the generated secret key and the file email outbox.
DATA_DIR = Path(os.environ.get("DELIVERY_DATA_DIR", BASE_DIR / ".data")).resolve()
# Prometheus metrics in multiprocess mode (gunicorn's and Celery's worker processes each write their
# files here; /metrics sums them): set before anything imports prometheus_client, which reads it then.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the data folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# Signs sessions and, unless FIELD_ENCRYPTION_KEY is set, derives the key that encrypts credentials.
SECRET_KEY = _secret_key()
# Key for destination credentials at rest (any string; defaults to one derived from SECRET_KEY).
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")
# Debug pages; never on in production.
DEBUG = env_bool("DEBUG")
# Host names this site answers to.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Origins allowed to POST forms when behind a proxy on another host/port, e.g. https://do.example.com
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The public URL of this site, used in alert messages to link to the overview.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# HTTPS: set DJANGO_HTTPS=1 when served over TLS (directly or behind a proxy that sets X-Forwarded-Proto).
HTTPS = env_bool("DJANGO_HTTPS")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "delivery",
    "overview",
    "devtools",
    "axes",
    "corsheaders",
    "auditlog",  # the change log (overview.changes)
]

MIDDLEWARE = [
    # First, so that a tracking API preflight is answered before anything else looks at it.
    "corsheaders.middleware.CorsMiddleware",
    "overview.ops.RequestIdMiddleware",  # every log line of a request names it (X-Request-ID)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "overview.changes.ActorMiddleware",  # who made each change in the change log
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# CORS for the tracking API only (browser and mobile SDKs post from any site: the write key is public in
# the page); a source may narrow it to its own origins (Source.allowed_origins, checked by the view). The
# dashboard and the REST API stay same-origin: no CORS header there.
CORS_URLS_REGEX = r"^/(v1|beacon/v1)/"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_HEADERS = (*corsheaders_defaults.default_headers, "anonymousid", "sentat")
CORS_EXPOSE_HEADERS = ["Retry-After"]
CORS_PREFLIGHT_MAX_AGE = 86400

ROOT_URLCONF = "overview.urls"
WSGI_APPLICATION = "overview.wsgi.application"

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
                "overview.pages.navigation.navigation",
                "overview.alerting.notifications.unread",
            ]
        },
    }
]

# PostgreSQL is the only database. DATABASE_URL names a server; without it the embedded one starts.
DATABASE_URL = os.environ.get("DATABASE_URL") or embedded.postgres_url(DATA_DIR)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
# The pipeline's hot statements are prepared (delivery.sql.execute_prepared): plan them once per
# connection. Custom plans over the daily partitions cost more to make than to run. Nothing else is
# prepared, so no other query is affected.
_options = DATABASES["default"].setdefault("OPTIONS", {})
_options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a login from a locked-out user name and IP before any password check.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"

# Single sign-on with OpenID Connect (mozilla-django-oidc; overview/sso/). Off unless a provider (its
# issuer, or its endpoints) and this site's client id and secret are set; the provider's redirect URI for
# this site is <SITE_URL>/oidc/callback/. Read at each request, so tests may change them.
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "")  # its endpoints come from <issuer>/.well-known/...
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")  # never logged nor shown
# Endpoints, each overriding what discovery says (all but end-session needed without OIDC_ISSUER).
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_JWKS_ENDPOINT", "")
OIDC_OP_END_SESSION_ENDPOINT = os.environ.get("OIDC_END_SESSION_ENDPOINT", "")
# The login page's button says "Sign in with <this>".
OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_RP_SCOPES = os.environ.get("OIDC_SCOPES", "openid email profile")
# The claim listing the user's groups; those named <prefix><workspace-slug>:owner or :viewer are the
# user's memberships, set to exactly that at every sign-in. A member of OIDC_STAFF_GROUP is staff.
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "groups")
OIDC_GROUP_PREFIX = os.environ.get("OIDC_GROUP_PREFIX", "delivery:")
OIDC_STAFF_GROUP = os.environ.get("OIDC_STAFF_GROUP", "")
# Seconds to wait for the provider; its TLS certificate is checked unless OIDC_VERIFY_SSL=0.
OIDC_TIMEOUT = float(os.environ.get("OIDC_TIMEOUT", "10"))
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
# ID tokens signed with the provider's keys (its JWKS), checked with the state and nonce of the sign-in.
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # kept in the session for the id_token_hint of the provider's logout
# The user name and password form (and the admin's, and POST /api/v1/token/). Off only takes effect with
# single sign-on configured, so that a typo cannot lock every operator out. API tokens work either way.
PASSWORD_LOGIN = env_bool("PASSWORD_LOGIN", True)
# After the password backends; it answers only the callback of a sign-in at the provider.
AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "overview.sso.backend.SingleSignOnBackend"]
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it, even when serving from finders
# Everything the pages load is here (plotly.js too: static/vendor/plotly), so no page reaches out.
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files are served by WhiteNoise from STATIC_ROOT, filled by collectstatic (gunicorn.conf.py runs it
# at every start): names carry a hash of the content, so they are cached for a year, and each comes
# gzip-compressed too. STATIC_HASHED=0 serves the files as they are, from the source tree (tests do).
STATIC_HASHED = env_bool("STATIC_HASHED", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_HASHED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_HASHED

# Email for alerts. Without EMAIL_HOST, messages are written as files under DATA_DIR/mail.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Delivery Overview <alerts@localhost>")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = DATA_DIR / "mail"

# Celery. CELERY_BROKER_URL names a Redis server; without it the embedded one (started by `demo`).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded.redis_url(DATA_DIR)
# Prefix for every broker key, so that several stacks can share one Redis (the tests use it).
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ.get("CELERY_KEY_PREFIX", "")}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_DEFAULT_QUEUE = "route"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect to a broker that went away for as long as it takes (Celery gives up after 100 tries,
# about three quarters of an hour, and the worker exits): a Redis restart must not end delivery.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# The pipeline.
# Days of events, outcomes, rollups and samples kept; older daily partitions are dropped.
EVENT_RETENTION_DAYS = int(os.environ.get("EVENT_RETENTION_DAYS", "14"))
# Allow destination URLs on loopback/private/link-local addresses (the demo and the tests need it).
DELIVERY_ALLOW_PRIVATE_ADDRESSES = env_bool("DELIVERY_ALLOW_PRIVATE_ADDRESSES")
# Seconds a partly filled delivery batch waits for more events before it is sent.
DELIVERY_FLUSH_SECONDS = float(os.environ.get("DELIVERY_FLUSH_SECONDS", "1.0"))
# Seconds to connect to / wait for an answer from a destination.
DELIVERY_CONNECT_TIMEOUT = float(os.environ.get("DELIVERY_CONNECT_TIMEOUT", "5"))
DELIVERY_READ_TIMEOUT = float(os.environ.get("DELIVERY_READ_TIMEOUT", "10"))
# Seconds one request may take in all, answer included (a trickling answer never trips the read timeout);
# 0 means connect + read timeouts. Always at most half of DELIVERY_LEASE_SECONDS when that is set.
DELIVERY_REQUEST_DEADLINE = float(os.environ.get("DELIVERY_REQUEST_DEADLINE", "0"))
# How many delivery tasks may send to one destination at once (one while it is failing), so that a slow
# or failing destination holds at most that many worker processes and the others keep delivering.
DELIVERY_DESTINATION_SLOTS = int(os.environ.get("DELIVERY_DESTINATION_SLOTS", "2"))
# Multiplies the retry schedule (about 1, 5, 15, 30, 60, 120 minutes); the tests shrink it.
DELIVERY_BACKOFF_SCALE = float(os.environ.get("DELIVERY_BACKOFF_SCALE", "1.0"))
# Every delivery attempt and batch request kept for the event trace (delivery.history); off only to
# measure what it costs.
DELIVERY_ATTEMPT_HISTORY = env_bool("DELIVERY_ATTEMPT_HISTORY", True)
# Seconds a claimed delivery batch is leased before the sweeper may hand it to another worker;
# 0 means max(60, twice DELIVERY_REQUEST_DEADLINE + 30).
DELIVERY_LEASE_SECONDS = float(os.environ.get("DELIVERY_LEASE_SECONDS", "0"))
# Whole-request failures in a row (no answer, 408, 5xx) that open a destination's circuit, and the seconds
# between its probes while it is open (delivery.throttle).
DELIVERY_CIRCUIT_FAILURES = int(os.environ.get("DELIVERY_CIRCUIT_FAILURES", "5"))
DELIVERY_CIRCUIT_PROBE_SECONDS = float(os.environ.get("DELIVERY_CIRCUIT_PROBE_SECONDS", "30"))
# The bearer token a Prometheus scrape of /metrics must send; empty: /metrics is open.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Minutes the dashboard's window ends before now, so that figures are settled (the API has none).
DASHBOARD_LOOKBACK_MINUTES = int(os.environ.get("DASHBOARD_LOOKBACK_MINUTES", "5"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "overview.api.tokens.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's parsers, with JSON nesting bounded (a deep body is a 400, not a RecursionError).
    "DEFAULT_PARSER_CLASSES": [
        "overview.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Counted in the shared cache (Redis), so a limit holds across every process and host.
    "DEFAULT_THROTTLE_CLASSES": ["overview.api.throttles.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # Requests per caller (token or session user) to the REST API, e.g. "600/minute".
        "user": os.environ.get("API_RATE_LIMIT", "600/minute"),
        # POST /api/v1/token/ per client IP: user name and password guesses.
        "token": os.environ.get("API_TOKEN_RATE_LIMIT", "30/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Delivery Overview API",
    "DESCRIPTION": "Configure sources, destinations and alerts; read where every event went.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the drf-spectacular-sidecar wheel: the docs never load a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Separate request and response components: write-only fields (credentials) only in requests.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "overview.api.schema.closed_request_bodies",
    ],
    # Several fields are called "kind": name each choice set after what it is. Here rather than in the
    # schema view, so that the system check's schema run (check --deploy) uses them too: without them it
    # printed two drf_spectacular.W001 warnings about enum names.
    "ENUM_NAME_OVERRIDES": {
        "DestinationKindEnum": "delivery.destinations.kinds.KIND_CHOICES",
        "AlertKindEnum": "overview.models.AlertRule.Kind",
        "ChannelEnum": "overview.models.Channel",
    },
}


# Shared state for rate limits and login lockouts: the cache, in the broker's Redis (its own key
# prefix), so every web process on every host counts the same requests. CACHE_URL names another Redis.
def _cache_url(broker_url: str) -> str:
    # The embedded Redis is a Unix socket (Celery's redis+socket://); redis-py spells it unix://.
    return (
        "unix://" + broker_url.removeprefix("redis+socket://")
        if broker_url.startswith("redis+socket://")
        else broker_url
    )


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("CACHE_URL") or _cache_url(CELERY_BROKER_URL),
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "delivery-overview-cache"),
    }
}

# Logins (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one user name from one IP, that
# pair is locked out for LOGIN_COOLOFF_MINUTES (the lockout page says so); a success resets the count.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "overview.pages.lockout.locked_out"  # a page saying for how long
AXES_VERBOSE = False

# Ingest per write key: at most INGEST_RATE_LIMIT requests a second to the tracking API (each may hold
# up to 500 events); more are answered 429 with Retry-After, which the analytics clients honour by
# sending again. 0, the default, is no limit (one bench key sends ~5,000 events/s in ~50 requests/s).
INGEST_RATE_LIMIT = int(os.environ.get("INGEST_RATE_LIMIT", "0"))

# Who may create workspaces: staff and superusers always; any other account only with this on.
ALLOW_WORKSPACE_CREATION = env_bool("ALLOW_WORKSPACE_CREATION")

# Content-Security-Policy on every answer (django-csp): scripts and styles only from our static files.
# The ReDoc page alone adds 'unsafe-inline' styles (its components inject <style>): overview/api/schema.py.
PLOTLY_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "": plotly.js-style-global
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Plotly adds its rules through an empty <style> element (the hash of ""), whose sheet it then
        # fills by CSSOM, which the policy allows (the basic bundle has no maps, so no MapLibre CSS).
        "style-src": ["'self'", *PLOTLY_STYLE_HASHES],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# LOG_FORMAT=json: one JSON object a line (timestamp, level, logger, message, and request_id, task_id and
# destination_id where known); the default is readable text.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").lower()
# Python's warnings go through logging too (with LOG_FORMAT=json, as JSON lines).
logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "delivery.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": JSON_FORMATTER,
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Celery's per-task "received" and "succeeded" lines (megabytes an hour under traffic) stay quiet.
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("httpx", "httpcore", "pgserver", "axes", "celery.app.trace", "celery.worker.strategy")
    },
}
