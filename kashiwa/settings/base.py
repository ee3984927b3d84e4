"""Settings shared by every environment. Every machine-specific value comes from ``env``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

from . import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env.get("KASHIWA_DATA_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

SECRET_KEY = env.get("SECRET_KEY", "dev-only-insecure-key-change-me-0123456789abcdefghijklmnop")
DEBUG = env.get_bool("DEBUG", False)
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "crispy_forms",
    "crispy_bootstrap5",
    "broadcasts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "broadcasts.middleware.IdleTimeoutMiddleware",
    "broadcasts.middleware.LoginRequiredMiddleware",
    "broadcasts.middleware.SecondFactorRequiredMiddleware",
    "broadcasts.middleware.PasswordChangeRequiredMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kashiwa.urls"
WSGI_APPLICATION = "kashiwa.wsgi.application"
ASGI_APPLICATION = "kashiwa.asgi.application"

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
                "django.template.context_processors.i18n",
                "broadcasts.context_processors.account",
            ],
        },
    },
]

DATABASES = {"default": env.database(env.get("DATABASE_URL"), DATA_DIR / "kashiwa.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "broadcasts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Login throttling: after AXES_FAILURE_LIMIT bad passwords the account is locked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.get_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env.get_int("LOGIN_LOCKOUT_MINUTES", 30))
# Lock the pair (account, address), never the account alone: someone without the password
# must not be able to keep a supervisor out (a 3 a.m. emergency approval from a phone comes
# from another address). Guessing from many addresses is slowed per account instead
# (LOGIN_THROTTLE_*: one try per few seconds after many failures, no hard lock), and 承認者 /
# 管理者 need the TOTP code as well. README "Security" explains the choice.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
LOGIN_THROTTLE_AFTER_FAILURES = env.get_int("LOGIN_THROTTLE_AFTER_FAILURES", 20)
LOGIN_THROTTLE_WINDOW_SECONDS = 15 * 60
LOGIN_THROTTLE_INTERVAL_SECONDS = env.get_int("LOGIN_THROTTLE_INTERVAL_SECONDS", 3)
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "broadcasts:dashboard"
LOGOUT_REDIRECT_URL = "login"

# Japanese first; English available. All times are stored in UTC and shown in Asia/Tokyo.
LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("日本語")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"  # filled by collectstatic in production
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

OTP_TOTP_ISSUER = "柏市役所 LINE 配信管理"
# An emergency approval needs a second factor verified within this many seconds.
SECOND_FACTOR_MAX_AGE_SECONDS = 5 * 60
# Members of these groups must verify a TOTP code after every login before doing anything.
# The names are broadcasts.roles.SUPERVISOR and broadcasts.roles.ADMIN (settings cannot import
# app modules); everyone else may enrol but is not asked.
SECOND_FACTOR_REQUIRED_GROUPS = ("承認者", "管理者")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Idle timeout: 30 minutes without a person's action (broadcasts.middleware.
# IdleTimeoutMiddleware; the dashboard's polling does not count). The cookie itself lasts a
# working day at most.
SESSION_IDLE_SECONDS = env.get_int("SESSION_IDLE_SECONDS", 30 * 60)
SESSION_COOKIE_AGE = 12 * 60 * 60
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy: scripts only from our own static files (no inline scripts, no
# eval). Style attributes are allowed (rich-menu tap areas are positioned with them); style
# elements and sheets only from our origin. Images may come from HTTPS (message previews).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Redis / Celery -------------------------------------------------------------------
REDIS_URL = env.get("REDIS_URL")
# Without REDIS_URL (the embedded default) Celery's messages live in a SQLite file of their own
# (kashiwa/broker.py), in KASHIWA_BROKER_DIR.
BROKER_DIR = Path(env.get("KASHIWA_BROKER_DIR", str(DATA_DIR / "broker")) or DATA_DIR / "broker")
CELERY_BROKER_URL = env.broker_url(
    REDIS_URL, env.get("CELERY_BROKER_URL"), BROKER_DIR / "broker.sqlite3"
)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {} if CELERY_BROKER_URL.startswith("sqlite:") else {"visibility_timeout": 3600}
)
# Celery's Django fix-up closes every database connection before and after every task
# unless this is set: each send (and the dispatcher, every second) then opened a new
# PostgreSQL session, ~20 ms of CPU for the backend and its cold caches; at the window's
# opening, 50 sends opened 52. Set, the fix-up never closes them (this is its task count
# between closes) and kashiwa/celery.py treats a task as Django treats a request: before and
# after it, a connection past CONN_MAX_AGE or found broken is closed (and reopened on use).
CELERY_DB_REUSE_MAX = 2**31
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("emergency", Exchange("emergency"), routing_key="emergency"),
)
CELERY_TASK_ROUTES = {
    "broadcasts.tasks.send_emergency_broadcast": {"queue": "emergency"},
    # Alerts to supervisors travel with emergencies: never behind a long multicast.
    "broadcasts.tasks.notifications.deliver_approval_alerts": {"queue": "emergency"},
    "broadcasts.tasks.notifications.approval_alerts_tick": {"queue": "emergency"},
}
# The dispatcher's beat; a run also waits for a send falling due before the next one.
DISPATCH_INTERVAL_SECONDS = env.get_int("DISPATCH_INTERVAL_SECONDS", 1)
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-broadcasts": {
        "task": "broadcasts.tasks.dispatch_due_broadcasts",
        # Every second: held sends start within about a second of 8:30 (one indexed query).
        "schedule": timedelta(seconds=DISPATCH_INTERVAL_SECONDS),
        "options": {"expires": 10},
    },
    # Webhook events stored while the broker was down, or whose worker died (issue 7).
    "process-pending-webhook-events": {
        "task": "broadcasts.tasks_citizens.process_pending_webhook_events",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 25},
    },
    # Processed webhook events are deleted after 30 days (policy 10).
    "purge-webhook-events": {
        "task": "broadcasts.tasks_citizens.purge_webhook_events",
        "schedule": timedelta(hours=6),
        "options": {"expires": 600},
    },
    # Approval alerts (issue 13): escalation of unopened emergency alerts, and the backstop
    # for alerts whose enqueue was lost (broker down) or whose worker died.
    "approval-alerts-tick": {
        "task": "broadcasts.tasks.notifications.approval_alerts_tick",
        "schedule": timedelta(seconds=10),
        "options": {"expires": 9},
    },
    # Ordinary submissions: one e-mail per reviewer with everything new since the last one.
    "review-digests": {
        "task": "broadcasts.tasks.notifications.send_review_digests",
        "schedule": timedelta(minutes=env.get_int("REVIEW_DIGEST_MINUTES", 15)),
        "options": {"expires": 300},
    },
    # Kept citizens' messages are deleted after the retention the city sets (policy 6, 10).
    "purge-citizen-messages": {
        "task": "broadcasts.tasks.moderation.purge_citizen_messages",
        "schedule": timedelta(hours=6),
        "options": {"expires": 600},
    },
    "refresh-insight": {
        "task": "broadcasts.tasks_insight.refresh_insight",
        "schedule": timedelta(hours=1),
        "options": {"expires": 600},
    },
    # Official information (issue 15): JMA's feeds and the IMAP mailbox, every minute.
    "poll-official-feeds": {
        "task": "broadcasts.tasks.poll_official_feeds",
        "schedule": timedelta(seconds=env.get_int("JMA_POLL_INTERVAL_SECONDS", 60)),
        "options": {"expires": 55},
    },
}
CELERY_TIMEZONE = "Asia/Tokyo"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False


def embedded_cache(folder: Path) -> dict[str, object]:
    """The cache of the embedded default: SQLite files that every process of the stack shares
    (kashiwa/cache.py), so that the web process sees the dispatcher's heartbeat, and the
    rate limiter's counters and the webhook's wake-up flag hold across workers."""
    return {
        "BACKEND": "kashiwa.cache.SharedCache",
        "LOCATION": str(folder),
        "SHARDS": 4,
        # How long one call waits for another process's write (each holds the lock for
        # well under a millisecond); reads never wait (WAL).
        "DATABASE_TIMEOUT": 5.0,
    }


if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": embedded_cache(DATA_DIR / "cache")}
# The webhook wakes one processing task for many events (the flag is in the shared cache).
WEBHOOK_COALESCE_WAKEUPS = True
# One webhook processor at a time holds this lease (renewed every batch); a processor that died
# loses it after this long and the next one takes its unfinished events back.
WEBHOOK_PROCESSOR_LEASE_SECONDS = env.get_int("WEBHOOK_PROCESSOR_LEASE_SECONDS", 15)


# Webhook events are split into this many streams by citizen (the last character of the LINE
# user ID), each with its own processor: a citizen's events stay in order, and the streams'
# processors run in parallel on the worker's processes (at most its --concurrency).
def webhook_streams(default: int) -> int:
    """``WEBHOOK_STREAMS`` from the environment (production's default differs: 4)."""
    streams = env.get_int("WEBHOOK_STREAMS", default)
    if not 1 <= streams <= 16:
        raise env.ConfigError("WEBHOOK_STREAMS は 1〜16 にしてください")
    return streams


WEBHOOK_STREAMS = webhook_streams(1)
if WEBHOOK_PROCESSOR_LEASE_SECONDS < 2:
    raise env.ConfigError("WEBHOOK_PROCESSOR_LEASE_SECONDS は 2 以上にしてください")

# --- LINE -----------------------------------------------------------------------------
SANDBOX_HOST = env.get("LINE_SANDBOX_HOST", "127.0.0.1") or "127.0.0.1"
SANDBOX_PORT = env.get_int("LINE_SANDBOX_PORT", 8765)
SANDBOX_URL = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
# The sandbox accepts exactly these credentials; they are not secrets.
SANDBOX_CHANNEL_ACCESS_TOKEN = "sandbox-channel-access-token"  # noqa: S105
SANDBOX_CHANNEL_SECRET = "sandbox-channel-secret"  # noqa: S105

LINE_CHANNEL_ACCESS_TOKEN = env.get("LINE_CHANNEL_ACCESS_TOKEN")
LINE_CHANNEL_SECRET = env.get("LINE_CHANNEL_SECRET")
LINE_USES_SANDBOX = not LINE_CHANNEL_ACCESS_TOKEN
if LINE_USES_SANDBOX:
    LINE_CHANNEL_ACCESS_TOKEN = SANDBOX_CHANNEL_ACCESS_TOKEN
    LINE_CHANNEL_SECRET = LINE_CHANNEL_SECRET or SANDBOX_CHANNEL_SECRET
LINE_API_BASE_URL = env.get(
    "LINE_API_BASE_URL", SANDBOX_URL if LINE_USES_SANDBOX else "https://api.line.me"
)
LINE_DATA_API_BASE_URL = env.get(
    "LINE_DATA_API_BASE_URL", SANDBOX_URL if LINE_USES_SANDBOX else "https://api-data.line.me"
)
LINE_REQUEST_TIMEOUT_SECONDS = float(env.get("LINE_REQUEST_TIMEOUT_SECONDS", "10") or 10)
# LINE: reply tokens must be used within one minute after the webhook is received; use after
# more than a minute is not guaranteed (developers.line.biz/en/docs/messaging-api/
# sending-messages/#reply-messages). A reply is not attempted once its event is older than this
# (counted from the event's own timestamp); the margin is for clocks and the request itself.
REPLY_TOKEN_MAX_AGE_SECONDS = env.get_int("REPLY_TOKEN_MAX_AGE_SECONDS", 50)
if not 1 <= REPLY_TOKEN_MAX_AGE_SECONDS <= 60:
    raise env.ConfigError("REPLY_TOKEN_MAX_AGE_SECONDS は 1〜60 にしてください（LINE は1分）")
# Replies to webhook events in flight at once per processing task (threads that call LINE).
REPLY_CONCURRENCY = env.get_int("REPLY_CONCURRENCY", 16)
if REPLY_CONCURRENCY < 1:
    raise env.ConfigError("REPLY_CONCURRENCY は 1 以上にしてください")

# --- Official information (issue 15: JMA 防災情報XML, 防災メール) -------------------------
# The JMA feed sandbox (jma_sandbox/, development tooling) serves JMA-style feeds locally.
JMA_SANDBOX_HOST = env.get("JMA_SANDBOX_HOST", "127.0.0.1") or "127.0.0.1"
JMA_SANDBOX_PORT = env.get_int("JMA_SANDBOX_PORT", 8766)
JMA_SANDBOX_URL = f"http://{JMA_SANDBOX_HOST}:{JMA_SANDBOX_PORT}"
# JMA's high-frequency feeds are https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml and
# extra.xml (set them here in production, earthquakes first: they are read in this order). Only the embedded/demo default (no LINE
# credentials) polls the local sandbox; otherwise nothing is polled until this is set.
JMA_USES_SANDBOX = env.get("JMA_FEED_URLS") is None and LINE_USES_SANDBOX
JMA_FEED_URLS = env.get_list(
    "JMA_FEED_URLS",
    [
        # Earthquakes first: the poll reads the feeds in this order.
        f"{JMA_SANDBOX_URL}/developer/xml/feed/eqvol.xml",
        f"{JMA_SANDBOX_URL}/developer/xml/feed/extra.xml",
    ]
    if JMA_USES_SANDBOX
    else [],
)
JMA_FEED_TIMEOUT_SECONDS = float(env.get("JMA_FEED_TIMEOUT_SECONDS", "10") or 10)
# Feed entries from these issuing offices are read first (Chiba's warnings; earthquakes).
JMA_PRIORITY_OFFICES = env.get_list(
    "JMA_PRIORITY_OFFICES", ["銚子地方気象台", "気象庁", "気象庁本庁", "気象庁予報部"]
)
# Where drafts send citizens for details (the city's disaster information).
OFFICIAL_INFO_URL = env.get("OFFICIAL_INFO_URL", "https://www.city.kashiwa.lg.jp/") or ""
# Senders whose mails become drafts: full addresses or @domains, comma-separated.
OFFICIAL_MAIL_ALLOW_LIST = env.get_list("OFFICIAL_MAIL_ALLOW_LIST", [])
# imaps://user:password@host/INBOX — polled every minute when set.
IMAP_URL = env.get("IMAP_URL")

# --- The city's rules -----------------------------------------------------------------
ACCOUNT_NAME = "柏市役所"
ACCOUNT_ID = "@kashiwa_shi"
# Where citizens reach this app's public pages (the greeting links to the policy page).
PUBLIC_BASE_URL = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
SEND_WINDOW_START = env.get("SEND_WINDOW_START", "08:30")
SEND_WINDOW_END = env.get("SEND_WINDOW_END", "17:15")
# Ordinary sends never use the last N broadcast-API slots of an hour (LINE allows 60/h).
EMERGENCY_BROADCAST_RESERVE = env.get_int("EMERGENCY_BROADCAST_RESERVE", 5)
MULTICAST_MAX_PER_SECOND = env.get_int("MULTICAST_MAX_PER_SECOND", 200)
MULTICAST_CONCURRENCY = env.get_int("MULTICAST_CONCURRENCY", 6)
# PostgreSQL builds a multicast send's rows in blocks while it sends (sending/build.py): the
# first block before the first request, then blocks of the step ahead of the senders. Both
# are rounded down to whole multicasts of 500 (at least one).
MULTICAST_BUILD_FIRST_RECIPIENTS = env.get_int("MULTICAST_BUILD_FIRST_RECIPIENTS", 20_000)
MULTICAST_BUILD_STEP_RECIPIENTS = env.get_int("MULTICAST_BUILD_STEP_RECIPIENTS", 100_000)
# A send that stops making progress for this long is taken over by another worker.
SEND_LEASE_SECONDS = env.get_int("SEND_LEASE_SECONDS", 60)
# Test sends per person: each costs LINE quota and buzzes the staff test recipients' phones.
TEST_SEND_LIMIT = env.get_int("TEST_SEND_LIMIT", 5)
TEST_SEND_WINDOW_MINUTES = env.get_int("TEST_SEND_WINDOW_MINUTES", 10)
if TEST_SEND_LIMIT < 1 or TEST_SEND_WINDOW_MINUTES < 1:
    raise env.ConfigError("TEST_SEND_LIMIT と TEST_SEND_WINDOW_MINUTES は 1 以上にしてください")

# --- Staff alerts (issue 13) ------------------------------------------------------------
# The address staff open the app at: the links in alerts and digests start with it.
SITE_URL = (env.get("SITE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
# An emergency alert nobody has opened after this many minutes goes to every 承認者 and 管理者.
ALERT_ESCALATION_MINUTES = env.get_int("ALERT_ESCALATION_MINUTES", 5)
# Ordinary submissions reach reviewers as one e-mail digest every this many minutes.
REVIEW_DIGEST_MINUTES = env.get_int("REVIEW_DIGEST_MINUTES", 15)
# How long a LINE link code shown to a staff member stays valid.
LINE_LINK_CODE_MINUTES = env.get_int("LINE_LINK_CODE_MINUTES", 10)
if min(ALERT_ESCALATION_MINUTES, REVIEW_DIGEST_MINUTES, LINE_LINK_CODE_MINUTES) < 1:
    raise env.ConfigError(
        "ALERT_ESCALATION_MINUTES・REVIEW_DIGEST_MINUTES・LINE_LINK_CODE_MINUTES は 1 以上にしてください"
    )
# E-mail: EMAIL_URL (smtp://user:password@host:25, submission://… for STARTTLS, smtps://…);
# without it the embedded default prints mail on the console.
_EMAIL = env.email(env.get("EMAIL_URL"), "django.core.mail.backends.console.EmailBackend")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL["EMAIL_HOST"]
EMAIL_PORT = _EMAIL["EMAIL_PORT"]
EMAIL_HOST_USER = _EMAIL["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _EMAIL["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _EMAIL["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _EMAIL["EMAIL_USE_SSL"]
DEFAULT_FROM_EMAIL = env.get("DEFAULT_FROM_EMAIL", "line-haishin@city.kashiwa.lg.jp")
EMAIL_TIMEOUT = env.get_int("EMAIL_TIMEOUT", 10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "kashiwa.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # LOG_FORMAT=json: one JSON object per line (production log shipping)
            "formatter": "json" if env.get("LOG_FORMAT") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The dispatcher runs every few seconds: log what it does, not that it ran.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
