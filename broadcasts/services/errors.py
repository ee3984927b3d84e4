"""Domain errors raised by services; views turn them into form errors and messages."""

from __future__ import annotations

import datetime as dt

from ..content import Problem
from ..permissions import BroadcastPermissionDenied
from ..schedule import format_jst, jst_date

__all__ = [
    "BroadcastInvalid",
    "BroadcastPermissionDenied",
    "InvalidTransition",
    "SecondFactorRequired",
    "StaleApproval",
    "TooManyTestSends",
]


class InvalidTransition(Exception):
    """The broadcast is not in a state that allows this action."""

    def __init__(self, current: str, action: str) -> None:
        from ..models import Broadcast

        label = Broadcast.Status(current).label
        super().__init__(f"「{label}」の配信には「{action}」を行えません。")
        self.current = current
        self.action = action


class BroadcastInvalid(Exception):
    """The content cannot be submitted or approved as it is."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.message for p in problems))
        self.problems = problems


class StaleApproval(Exception):
    """The reviewer saw different content from what is stored now."""

    def __init__(self) -> None:
        super().__init__(
            "確認中に内容が変更されました。最新の内容を確認してから、もう一度承認してください。"
        )


class SecondFactorRequired(BroadcastPermissionDenied):
    """An emergency approval needs a second factor verified within the last few minutes."""

    def __init__(self) -> None:
        super().__init__(
            "緊急配信の承認には、5分以内の二要素認証（認証アプリのワンタイムパスワード）が必要です。"
        )


class TooManyTestSends(Exception):
    """This person has made as many test sends as the window allows; nothing was sent."""

    def __init__(
        self, *, limit: int, window: dt.timedelta, retry_at: dt.datetime, now: dt.datetime
    ) -> None:
        # Shown as HH:MM: round up, so that trying at the time shown always works.
        shown = retry_at
        if shown.second or shown.microsecond:
            shown = shown.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        when = format_jst(shown, with_date=jst_date(shown) != jst_date(now))
        super().__init__(
            f"テスト送信は{_window_label(window)}に{limit}回までです。"
            f"{when} 以降にもう一度お試しください。"
        )
        self.limit = limit
        self.window = window
        self.retry_at = retry_at


def _window_label(window: dt.timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60}時間"
    return f"{minutes}分間"
