"""Test settings: same as base, fast hashing; real services chosen by DATABASE_URL/REDIS_URL."""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests start their own sandbox on a free port and point the gateway at it.
LINE_REQUEST_TIMEOUT_SECONDS = 5.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
