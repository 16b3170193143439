"""Small helpers every platform adapter needs: constant-time comparison, header lookup, GMT+8 time.

Kept tiny and stable on purpose: several adapters (push platforms and pulled platforms) import it.
Chinese platforms speak Beijing time (GMT+8, no daylight saving); canonical types are naive UTC, so
conversions happen here, at the edge, and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping

from integrations.base import PayloadError

GMT8 = dt.timezone(dt.timedelta(hours=8), "GMT+8")
GMT8_FORMAT = "%Y-%m-%d %H:%M:%S"  # the platforms' "yyyy-MM-dd HH:mm:ss"


class MessagePayloadError(PayloadError):
    """A :class:`PayloadError` naming the platform's message id when it is known (receivers key on it)."""

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.message_id = message_id


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two digests (text is compared as UTF-8)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name; None if absent."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, val in headers.items():
        if key.lower() == wanted:
            return val
    return None


def gmt8_to_utc(local: dt.datetime) -> dt.datetime:
    """A naive Beijing-time datetime as naive UTC."""
    return (local - dt.timedelta(hours=8)).replace(tzinfo=None)


def utc_to_gmt8(utc: dt.datetime) -> dt.datetime:
    """A naive UTC datetime as naive Beijing time."""
    return (utc + dt.timedelta(hours=8)).replace(tzinfo=None)


def parse_gmt8(text: str) -> dt.datetime:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time as naive UTC. ValueError if malformed."""
    return gmt8_to_utc(dt.datetime.strptime(text.strip(), GMT8_FORMAT))


def format_gmt8(utc: dt.datetime) -> str:
    """Naive UTC as ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    return utc_to_gmt8(utc).strftime(GMT8_FORMAT)


def from_unix(seconds: float) -> dt.datetime:
    """Unix seconds as naive UTC."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def from_unix_ms(millis: float) -> dt.datetime:
    """Unix milliseconds as naive UTC."""
    return from_unix(millis / 1000.0)


def to_unix(utc: dt.datetime) -> int:
    """Naive UTC as whole unix seconds."""
    return int(utc.replace(tzinfo=dt.UTC).timestamp())


def to_unix_ms(utc: dt.datetime) -> int:
    """Naive UTC as unix milliseconds."""
    return round(utc.replace(tzinfo=dt.UTC).timestamp() * 1000)


def parse_iso_utc(text: str) -> dt.datetime:
    """An ISO 8601 timestamp with an offset (Shopify, WooCommerce ``*_gmt``) as naive UTC.

    A timestamp without an offset is taken as UTC already. ValueError if malformed.
    """
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)
