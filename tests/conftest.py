"""Shared fixtures. Each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

import pytest

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.sandbox",
    "tests.fixtures.browser",
]


@pytest.fixture(autouse=True)
def _celery_conf_restored():
    """Celery reads Django settings once, lazily: a test that makes tasks eager or changes
    the broker must not leave that behind for the next test."""
    from kashiwa.celery import app

    keys = (
        "task_always_eager",
        "broker_url",
        "broker_connection_timeout",
        "task_publish_retry_policy",
    )
    before = {key: app.conf[key] for key in keys}
    yield
    if app.conf["broker_url"] != before["broker_url"]:
        # The producer pool was made for the test's broker (maybe a Redis it has killed):
        # the next test starts with a fresh one for the suite's broker. kombu keeps its pools
        # by URL, closed ones too ("Acquire on closed pool"): reset them all, and Celery's
        # references to them.
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
    for key, value in before.items():
        app.conf[key] = value


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (quota, rate-limit counters, health probes)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _japanese_after_each_test():
    """Django keeps the language a request activated in the thread: a test that asked for
    English screens must not leave the next test (or a date filter it calls) in English."""
    from django.utils import translation

    yield
    translation.activate("ja")
