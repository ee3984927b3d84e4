"""The one reader of the environment.

Every setting that can change between machines comes through here, so that a bad value
stops start-up with one clear line (``ConfigError``) instead of a traceback deep in Django.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A configuration value is missing or malformed."""


def get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        # Docker-style secrets: NAME_FILE points at a file holding the value.
        file_path = os.environ.get(f"{name}_FILE")
        if file_path:
            try:
                return Path(file_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={file_path} を読めません: {exc}") from exc
        return default
    return value.strip()


def require(name: str) -> str:
    value = get(name)
    if not value:
        raise ConfigError(f"環境変数 {name} が設定されていません (required in production)")
    return value


def get_bool(name: str, default: bool = False) -> bool:
    value = get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} は true/false ではありません")


def get_int(name: str, default: int) -> int:
    value = get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} は整数ではありません") from exc


def get_list(name: str, default: list[str]) -> list[str]:
    value = get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database(url: str | None, default_sqlite: Path) -> dict[str, Any]:
    """Parse DATABASE_URL (or fall back to a SQLite file) with a clear error on bad input."""
    import dj_database_url

    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite),
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
            "TEST": {"NAME": str(default_sqlite.with_name("test_" + default_sqlite.name))},
        }
    scheme = urlparse(url).scheme
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise ConfigError(
            f"DATABASE_URL の形式が不正です (postgresql://user@host:5432/name か sqlite:///path): "
            f"scheme {scheme or '(none)'!r}"
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types on bad input
        raise ConfigError(f"DATABASE_URL を解釈できません: {exc}") from exc
    if config.get("ENGINE", "").endswith("sqlite3"):
        config["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
        config["CONN_MAX_AGE"] = 0
    elif not config.get("NAME"):
        raise ConfigError("DATABASE_URL にデータベース名がありません")
    return config


def broker_url(redis_url: str | None, broker: str | None, embedded_file: Path) -> str:
    """Celery broker: CELERY_BROKER_URL, else REDIS_URL, else the embedded broker, a SQLite
    file (kashiwa/broker.py)."""
    url = broker or redis_url
    if url:
        scheme = urlparse(url).scheme
        if scheme not in {"redis", "rediss", "sqlite", "amqp", "memory"}:
            raise ConfigError(f"ブローカー URL の形式が不正です: scheme {scheme or '(none)'!r}")
        return url
    return f"sqlite:///{embedded_file.resolve()}"


EMAIL_SCHEMES = {
    "smtp": ("django.core.mail.backends.smtp.EmailBackend", 25, False, False),
    "submission": ("django.core.mail.backends.smtp.EmailBackend", 587, True, False),
    "smtp+tls": ("django.core.mail.backends.smtp.EmailBackend", 587, True, False),
    "smtps": ("django.core.mail.backends.smtp.EmailBackend", 465, False, True),
    "console": ("django.core.mail.backends.console.EmailBackend", 0, False, False),
    "locmem": ("django.core.mail.backends.locmem.EmailBackend", 0, False, False),
    "dummy": ("django.core.mail.backends.dummy.EmailBackend", 0, False, False),
}


def email(url: str | None, default_backend: str) -> dict[str, Any]:
    """Parse EMAIL_URL (``smtp://user:password@host:25``, ``submission://…`` for STARTTLS on
    587, ``smtps://…`` for TLS on 465, ``console://``) into Django's EMAIL_* settings."""
    from urllib.parse import unquote

    config: dict[str, Any] = {
        "EMAIL_BACKEND": default_backend,
        "EMAIL_HOST": "localhost",
        "EMAIL_PORT": 25,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
    }
    if not url:
        return config
    parsed = urlparse(url)
    if parsed.scheme not in EMAIL_SCHEMES:
        raise ConfigError(
            f"EMAIL_URL の形式が不正です (smtp://user:pass@host:25, submission://…, smtps://…, "
            f"console://): scheme {parsed.scheme or '(none)'!r}"
        )
    backend, port, tls, ssl = EMAIL_SCHEMES[parsed.scheme]
    config["EMAIL_BACKEND"] = backend
    if port:
        if not parsed.hostname:
            raise ConfigError("EMAIL_URL にメールサーバーのホスト名がありません")
        try:
            config["EMAIL_PORT"] = parsed.port or port
        except ValueError as exc:
            raise ConfigError(f"EMAIL_URL のポート番号が不正です: {exc}") from exc
        config.update(
            EMAIL_HOST=parsed.hostname,
            EMAIL_HOST_USER=unquote(parsed.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parsed.password or ""),
            EMAIL_USE_TLS=tls,
            EMAIL_USE_SSL=ssl,
        )
    return config
