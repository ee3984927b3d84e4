"""Bad configuration stops start-up with one clear line, not a traceback."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "kashiwa.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "DATABASE_URL": "postgresql://kashiwa@db.internal:5432/kashiwa",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "LINE_CHANNEL_ACCESS_TOKEN": "a" * 170,
    "LINE_CHANNEL_SECRET": "0123456789abcdef0123456789abcdef",
    "ALLOWED_HOSTS": "line.city.kashiwa.lg.jp",
}


def manage(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "LINE_CHANNEL_ACCESS_TOKEN",
            "DJANGO_SETTINGS_MODULE",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("設定エラー")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_malformed_database_url():
    result = manage("check", env={"DATABASE_URL": "mysql//nonsense"})
    assert_one_clear_line(result, "DATABASE_URL")


def test_database_url_without_a_name():
    result = manage("check", env={"DATABASE_URL": "postgresql://"})
    assert_one_clear_line(result, "DATABASE_URL")


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_CHANNEL_SECRET", "DATABASE_URL"]
)
def test_production_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", env=env)
    assert_one_clear_line(result, missing)


def test_unreachable_redis_stops_the_stack():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = manage("runstack", env={"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert_one_clear_line(result, "Redis", str(port))


def test_secrets_never_printed_in_the_error():
    result = manage("runstack", env={"REDIS_URL": "redis://:hunter2-secret@127.0.0.1:1/0"})
    assert result.returncode == 2
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_deploy_check_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
