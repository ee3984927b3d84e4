"""Local development: embedded defaults (SQLite database, broker and cache; LINE sandbox)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.get_bool("DEBUG", True)
