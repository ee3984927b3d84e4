"""Fixtures shared by the chaos tests."""

from .test_processes import private_redis  # noqa: F401 - a fixture for every chaos module
