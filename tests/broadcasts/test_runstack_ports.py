"""``runstack`` refuses, in one Japanese line, a web port that one of its sandboxes uses: a
collision would leave the sandbox restarting for ever (seen with PORT=8765)."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from broadcasts.management.commands.runstack import check_ports


def test_the_line_sandbox_port_is_refused(settings):
    settings.LINE_USES_SANDBOX = True
    settings.SANDBOX_PORT = 8765
    with pytest.raises(CommandError, match="LINE サンドボックスと同じです"):
        check_ports(8765)


def test_the_jma_sandbox_port_is_refused(settings):
    settings.JMA_USES_SANDBOX = True
    settings.JMA_SANDBOX_PORT = 8766
    with pytest.raises(CommandError, match="気象庁フィード サンドボックスと同じです"):
        check_ports(8766)


def test_other_ports_and_real_line_are_fine(settings):
    settings.LINE_USES_SANDBOX = False
    settings.JMA_USES_SANDBOX = False
    settings.SANDBOX_PORT = 8765
    check_ports(8765)  # no sandbox runs: nothing to collide with
    settings.LINE_USES_SANDBOX = True
    check_ports(8000)
