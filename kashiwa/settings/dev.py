"""Local development: embedded defaults (SQLite, filesystem broker, LINE sandbox)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.get_bool("DEBUG", True)
