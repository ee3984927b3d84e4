"""Test settings: same as base, fast hashing; real services chosen by DATABASE_URL/REDIS_URL."""

from pathlib import Path

from .base import *  # noqa: F403
from .base import DATA_DIR, INSTALLED_APPS, REDIS_URL, embedded_cache, env

DEBUG = False
# A `flush` that can empty the append-only audit log (see tests/dbflush); never in production.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.dbflush"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests log in with force_login; the tests of the second factor turn this on themselves.
SECOND_FACTOR_REQUIRED_GROUPS: tuple[str, ...] = ()
# Tests start their own sandbox on a free port and point the gateway at it.
LINE_REQUEST_TIMEOUT_SECONDS = float(env.get("LINE_REQUEST_TIMEOUT_SECONDS") or 5.0)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests never share the embedded broker or cache with a running dev stack: files of their own.
if not (REDIS_URL or env.get("CELERY_BROKER_URL")):
    TEST_BROKER_DIR = Path(env.get("KASHIWA_BROKER_DIR") or DATA_DIR / "test-broker")
    CELERY_BROKER_URL = env.broker_url(None, None, TEST_BROKER_DIR / "broker.sqlite3")
if not REDIS_URL:
    CACHES = {"default": embedded_cache(DATA_DIR / "test-cache")}
