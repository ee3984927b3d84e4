"""Domain errors raised by services; views turn them into form errors and messages."""

from __future__ import annotations

from ..content import Problem
from ..permissions import BroadcastPermissionDenied

__all__ = [
    "BroadcastInvalid",
    "BroadcastPermissionDenied",
    "InvalidTransition",
    "SecondFactorRequired",
    "StaleApproval",
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
