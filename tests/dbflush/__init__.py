"""Test-only Django app (installed by ``kashiwa.settings.test``): a ``flush`` that can empty
the append-only audit log. See ``management/commands/flush.py``."""
