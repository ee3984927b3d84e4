"""Shared fixtures. Each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.sandbox",
    "tests.fixtures.browser",
]
