"""What every call-out job records after an attempt: done, due again after a backoff, or failed for good.

Ship confirmations, waybills and pickup bookings share the pattern: claim a row with a lease, call a platform
or a courier outside any transaction, then record the outcome here. A retryable error (a timeout, 5xx, a
busy courier) waits ``backoff(attempts)``: 30 s, 1, 2, 4, 8, 16, 32 minutes, capped at an hour; a
non-retryable one, or the :data:`MAX_ATTEMPTS`-th attempt, fails the row and opens an exception item with
the reason, where an operator sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import insert
from sqlalchemy.orm import Session

from fulfil.domain.models import ExceptionItem

MAX_ATTEMPTS = 8
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
LEASE = dt.timedelta(minutes=2)  # how long a claimed row is left to its run before others may take it
ORPHAN_AFTER = dt.timedelta(minutes=2)  # a row never attempted this long has lost its job: sweep it
REASON_CHARS = 512

Outcome = Literal["done", "retry", "failed"]


def clip(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    wait: dt.timedelta = BACKOFF_BASE * 2 ** max(attempts - 1, 0)
    return min(wait, BACKOFF_CAP)


def after_attempt(
    attempts: int,
    error: str | None,
    retryable: bool,
    now: dt.datetime,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[Outcome, dict[str, Any]]:
    """The outcome of attempt number ``attempts`` and the columns it sets: ``attempts`` and ``last_error``
    always, ``next_attempt_at`` for a retry. The caller adds its own columns for ``done`` and the failed
    status; a failure's reason is ``values["last_error"]``."""
    values: dict[str, Any] = {"attempts": attempts}
    if error is None:
        values["last_error"] = None
        return "done", values
    if retryable and attempts < max_attempts:
        values.update(next_attempt_at=now + backoff(attempts), last_error=clip(error))
        return "retry", values
    reason = f"gave up after {attempts} attempts: {error}" if retryable else error
    values["last_error"] = clip(reason)
    return "failed", values


def open_exception(
    session: Session, kind: str, subject: str, reason: str, payload: Mapping[str, Any], now: dt.datetime
) -> None:
    """An open exception item for an operator, in the caller's transaction."""
    session.execute(
        insert(ExceptionItem).values(
            kind=kind,
            subject=subject,
            reason=clip(reason),
            payload=dict(payload),
            status="open",
            created_at=now,
        )
    )
