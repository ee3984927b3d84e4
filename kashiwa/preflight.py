"""Start-up checks that turn bad configuration into one clear line (not a traceback)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from .settings.env import ConfigError


def check_database() -> None:
    try:
        connection.ensure_connection()
    except Exception as exc:
        db = settings.DATABASES["default"]
        where = db.get("HOST") or db.get("NAME")
        raise ConfigError(
            f"データベースに接続できません ({where}): {str(exc).splitlines()[0]}"
        ) from exc


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return
    from kombu import Connection

    embedded = url.startswith("sqlite:")
    try:
        with Connection(url, connect_timeout=3, transport_options={"max_retries": 0}) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            if embedded:  # opens the file and creates its tables before any worker starts
                conn.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception as exc:
        if embedded:
            raise ConfigError(f"ブローカー (SQLite) を開けません ({url}): {exc}") from exc
        raise ConfigError(f"ブローカー (Redis) に接続できません ({_redact(url)}): {exc}") from exc


def _redact(url: str) -> str:
    """Never print a password from a URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_all() -> None:
    check_database()
    check_broker()
