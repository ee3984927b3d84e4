"""Webhook signature check with line-bot-sdk v3's own validator (DESIGN.md §7).

``x-line-signature`` is base64(HMAC-SHA256(channel secret, raw body)); the SDK compares it in
constant time (``hmac.compare_digest``)."""

from __future__ import annotations

import functools

from django.conf import settings
from linebot.v3 import SignatureValidator


@functools.lru_cache(maxsize=4)
def _validator(channel_secret: str) -> SignatureValidator:
    return SignatureValidator(channel_secret)


def verify_signature(body: bytes, signature: str, *, channel_secret: str | None = None) -> bool:
    """True when ``signature`` is LINE's signature of exactly ``body``."""
    secret = channel_secret if channel_secret is not None else settings.LINE_CHANNEL_SECRET
    if not secret or not signature:
        return False
    try:
        text = body.decode("utf-8")  # LINE sends UTF-8; the SDK signs the text re-encoded
    except UnicodeDecodeError:
        return False
    try:
        return bool(_validator(secret).validate(text, signature))
    except (TypeError, ValueError):
        return False
