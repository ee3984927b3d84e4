"""The gateway's errors. Callers never see line-bot-sdk types (STYLE.md idiom 6)."""

from __future__ import annotations


class LineError(Exception):
    """A LINE API call did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        details: list[dict[str, str]] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or []
        self.request_id = request_id

    def describe(self) -> str:
        """What staff see: LINE's own message and the properties it names."""
        parts = [f"LINE API {self.status}: {self.message}" if self.status else self.message]
        for detail in self.details:
            prop = detail.get("property", "")
            parts.append(
                f"{prop}: {detail.get('message', '')}" if prop else detail.get("message", "")
            )
        return " / ".join(p for p in parts if p)


class LineTemporaryError(LineError):
    """5xx, timeouts and connection errors: retrying with the same retry key is safe."""


class LineRateLimitedError(LineTemporaryError):
    """429 Too many requests: back off, then retry with the same key."""


class LinePermanentError(LineError):
    """4xx other than 409/429: retrying would fail the same way."""


class LineQuotaExceededError(LinePermanentError):
    """429 'You have reached your monthly limit.': needs a person, not a retry."""
