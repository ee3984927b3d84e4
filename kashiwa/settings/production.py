"""Production: refuses to start without its secrets (SECRET_KEY, DATABASE_URL, broker, LINE)."""

from .base import *  # noqa: F403
from .base import env, webhook_streams

DEBUG = False
SECRET_KEY = env.require("SECRET_KEY")
if len(SECRET_KEY) < 50:
    raise env.ConfigError("SECRET_KEY は 50 文字以上にしてください")
DATABASES = {"default": env.database(env.require("DATABASE_URL"), DATA_DIR / "unused.sqlite3")}  # noqa: F405
if not (env.get("REDIS_URL") or env.get("CELERY_BROKER_URL")):
    raise env.ConfigError("環境変数 REDIS_URL (または CELERY_BROKER_URL) が設定されていません")
LINE_CHANNEL_ACCESS_TOKEN = env.require("LINE_CHANNEL_ACCESS_TOKEN")
LINE_CHANNEL_SECRET = env.require("LINE_CHANNEL_SECRET")
LINE_USES_SANDBOX = False
LINE_API_BASE_URL = env.get("LINE_API_BASE_URL", "https://api.line.me")
LINE_DATA_API_BASE_URL = env.get("LINE_DATA_API_BASE_URL", "https://api-data.line.me")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise env.ConfigError("環境変数 ALLOWED_HOSTS が設定されていません")
# Links in alerts: SITE_URL, else the first allowed host over HTTPS.
SITE_URL = (env.get("SITE_URL") or f"https://{ALLOWED_HOSTS[0].lstrip('.')}").rstrip("/")
# Alerts by e-mail: EMAIL_URL, else the machine's own mail server (localhost:25).
_EMAIL = env.email(env.get("EMAIL_URL") or "smtp://localhost:25", "")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL["EMAIL_HOST"]
EMAIL_PORT = _EMAIL["EMAIL_PORT"]
EMAIL_HOST_USER = _EMAIL["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _EMAIL["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _EMAIL["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _EMAIL["EMAIL_USE_SSL"]

SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True

# The Procfile's default worker runs 4 processes: as many webhook streams, so that a burst of
# follow events is processed in parallel (bench/webhook: the e2e rate was measured so).
WEBHOOK_STREAMS = webhook_streams(4)
