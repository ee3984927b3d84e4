#!/usr/bin/env python
"""Django's command-line utility for kashiwa-line-broadcasts."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kashiwa.settings.dev")
    from kashiwa.settings.env import ConfigError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        # One clear line, not a traceback: staff and operators read this.
        print(f"設定エラー (configuration error): {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
