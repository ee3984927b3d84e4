"""Flags every process shares (kashiwa/cache.py): the webhook's wake flag and its
processors' leases, on the configured Redis (REDIS_URL) or the embedded shared cache."""

from __future__ import annotations

import os

from kashiwa import cache as shared


def test_a_flag_is_set_once_until_deleted():
    assert shared.flag_add("test:flag", "a", 30)
    assert not shared.flag_add("test:flag", "b", 30)
    assert shared.flag_get("test:flag") == "a"
    shared.flag_delete("test:flag")
    assert shared.flag_add("test:flag", "b", 30)
    shared.flag_delete("test:flag")


def test_only_the_holder_renews_or_releases_a_lease():
    assert shared.flag_add("test:lease", "holder", 30)
    assert shared.flag_renew("test:lease", "holder", 30)
    assert not shared.flag_renew("test:lease", "someone-else", 30)
    shared.flag_release("test:lease", "someone-else")
    assert shared.flag_get("test:lease") == "holder"
    shared.flag_release("test:lease", "holder")
    assert shared.flag_get("test:lease") is None
    assert not shared.flag_renew("test:lease", "holder", 30)  # gone: not brought back


def test_one_client_per_process_on_the_configured_redis(settings):
    client = shared.redis_client()
    if not settings.REDIS_URL:
        assert client is None  # the embedded default: the shared cache
        return
    assert shared.redis_client() is client
    assert client.connection_pool.connection_kwargs["db"] == int(
        settings.REDIS_URL.rsplit("/", 1)[1] or 0
    )
    assert os.getpid() in {pid for pid, _ in shared._clients}
