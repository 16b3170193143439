"""The inbox: every platform message stored once, durably, before the platform is answered.

Pushes are stored in one transaction (one push, or the group of concurrent pushes the receiver commits
together): one multi-row ``INSERT ... ON CONFLICT (platform, message_id) DO NOTHING RETURNING``
(PostgreSQL, and SQLite ≥ 3.35) and outbox jobs ``normalise_inbox(*new_ids)`` for the rows that are new, so
a duplicate delivery writes nothing at all and the jobs reach rq only after the commit. No ORM object is made
per message: a push of a hundred messages is one statement.

A message the inbox cannot hold as it stands (an order id longer than the column, a NUL character that
PostgreSQL refuses) is not dropped and does not fail the push: it is stored with status ``exception`` and its
reason, and an exception item is opened for it. A correctly signed push that cannot be parsed at all is kept
whole the same way by :func:`store_unparseable`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Insert, Table, func, insert, select
from sqlalchemy.orm import Session

from fulfil.domain.models import ExceptionItem, InboxMessage, InboxStatus, Platform
from fulfil.jobs import outbox
from integrations.base import PushEvent, PushMessage

NORMALISE_TASK = "normalise_inbox"
UNPARSEABLE_KIND = "unparseable_push"
INVALID_MESSAGE_KIND = "invalid_message"
UNPARSEABLE_TOPIC = "unparseable"
# Rows per INSERT: far above a normal push (Douyin sends up to a few hundred), well below SQLite's limit of
# 32,766 bound parameters per statement.
ROWS_PER_STATEMENT = 1000
# Inbox ids per normalise job: big enough that a job's fixed cost (reading shops, SKU maps) is shared, small
# enough that two workers split a burst between them.
IDS_PER_JOB = 1000

_INBOX = cast(Table, InboxMessage.__table__)
_EXCEPTIONS = cast(Table, ExceptionItem.__table__)


def _chars(column: ColumnElement[Any]) -> int:
    """The declared length of a text column: what PostgreSQL enforces (and SQLite does not)."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no declared length")
    return length


_MESSAGE_ID_CHARS = _chars(_INBOX.c.message_id)
_TOPIC_CHARS = _chars(_INBOX.c.topic)
_SHOP_CHARS = _chars(_INBOX.c.shop_code)
_ORDER_CHARS = _chars(_INBOX.c.platform_order_id)
_APP_KEY_CHARS = _chars(_INBOX.c.app_key)
_REASON_CHARS = _chars(_INBOX.c.reason)
_EXCEPTION_REASON_CHARS = _chars(_EXCEPTIONS.c.reason)


@dataclass(frozen=True)
class StoreResult:
    new_ids: list[int]  # rows stored now for normalisation (status received), in push order
    duplicates: int  # messages already in the inbox (or repeated within the push): nothing written
    exception_ids: list[int] = field(default_factory=list)  # rows stored now as exceptions (with a reason)


@dataclass(frozen=True)
class InboxCount:
    platform: str
    status: str
    count: int


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def body_digest(body: bytes) -> str:
    """The message id of a push whose own id cannot be read; a retried identical push is still a duplicate."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _storable(text: str) -> bool:
    """Can PostgreSQL store this text? Not with a NUL, nor with a lone surrogate (JSON ``"\\ud800"``)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dedupe_key(message_id: str) -> str:
    # Longer ids (or ids PostgreSQL cannot store) are replaced by their digest: still one key per id.
    if message_id and len(message_id) <= _MESSAGE_ID_CHARS and _storable(message_id):
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


def _clip(text: str, limit: int) -> str:
    if not _storable(text):
        text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _problem(m: PushMessage) -> str | None:
    """Why the inbox cannot hold this message as the adapter gave it, or None."""
    for name, value, limit in (
        ("shop code", m.shop_code, _SHOP_CHARS),
        ("platform order id", m.platform_order_id, _ORDER_CHARS),
    ):
        if value is None:
            continue
        if not _storable(value):
            return f"{name} contains a NUL character or invalid Unicode"
        if len(value) > limit:
            return f"{name} is {len(value)} characters, more than {limit}"
    return None


# The insert is written as driver SQL: SQLAlchemy's compiled multi-row VALUES spends ~0.3 ms of CPU per row
# building and caching bind parameters, more than everything else a push costs. On PostgreSQL the rows travel
# as one binary array per column through ``unnest`` (one constant statement, prepared once per connection,
# whatever the number of rows); SQLite gets a multi-row VALUES.
_COLUMNS = (
    "platform",
    "message_id",
    "app_key",
    "topic",
    "event",
    "shop_code",
    "platform_order_id",
    "occurred_at",
    "received_at",
    "raw",
    "status",
    "attempts",
    "reason",
)
_PG_TYPES = {"occurred_at": "timestamp", "received_at": "timestamp", "raw": "bytea", "attempts": "int4"}
_CONFLICT = "ON CONFLICT (platform, message_id) DO NOTHING RETURNING id, platform, message_id"
_PG_INSERT = (
    f"INSERT INTO {_INBOX.name} ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"%b::{_PG_TYPES.get(c, 'varchar')}[]" for c in _COLUMNS)
    + f") {_CONFLICT}"
)
_SQLITE_ROW = "(" + ", ".join("?" * len(_COLUMNS)) + ")"


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's storage format for DateTime on SQLite, so ORM reads of these rows see datetimes.
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert ``rows`` skipping (platform, message_id) already stored: (platform, message_id) -> row id."""
    stored: dict[tuple[str, str], int] = {}
    conn = session.connection()
    dialect = conn.dialect.name
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        if dialect == "postgresql":
            arrays = tuple([row[c] for row in chunk] for c in _COLUMNS)
            result = conn.exec_driver_sql(_PG_INSERT, arrays)
        elif dialect == "sqlite":
            sql = f"INSERT INTO {_INBOX.name} ({', '.join(_COLUMNS)}) VALUES "
            sql += ", ".join([_SQLITE_ROW] * len(chunk)) + " " + _CONFLICT
            flat = tuple(_sqlite_value(row[c]) for row in chunk for c in _COLUMNS)
            result = conn.exec_driver_sql(sql, flat)
        else:
            raise RuntimeError(f"inbox: unsupported database {dialect!r}")
        for row_id, platform, message_id in result:
            stored[(platform, message_id)] = int(row_id)
    return stored


def _open_exceptions(session: Session, items: list[dict[str, Any]]) -> None:
    if items:
        stmt: Insert = insert(_EXCEPTIONS).values(items)
        session.execute(stmt)


@dataclass(frozen=True)
class Push:
    """One verified push to store: its platform, the app that signed it, and its messages."""

    platform: str
    app_key: str | None
    messages: Sequence[PushMessage]


def store_push(
    session: Session, platform: str, app_key: str | None, messages: Sequence[PushMessage]
) -> StoreResult:
    """Store a verified push's messages once each, in ``session``'s transaction (the caller commits).

    Heartbeats are not stored. The new rows get outbox jobs ``normalise_inbox(*new_ids)`` (one per
    :data:`IDS_PER_JOB` ids); a push whose messages are all known writes nothing.
    """
    return store_pushes(session, [Push(platform, app_key, messages)])[0]


def store_pushes(session: Session, pushes: Sequence[Push]) -> list[StoreResult]:
    """Store several verified pushes in ``session``'s transaction: one insert, one result per push.

    What concurrent requests share when the receiver commits them as a group: the rows of every push go in
    one statement, and the new ones get ``normalise_inbox`` jobs of up to :data:`IDS_PER_JOB` ids. A message
    in two pushes of the group is stored for the first and is a duplicate for the second, as if they had
    arrived one after the other.
    """
    now = _utcnow()
    rows: list[dict[str, Any]] = []
    owners: list[int] = []  # the push each row came from
    reasons: dict[tuple[str, str], str] = {}
    repeated = [0] * len(pushes)
    seen: set[tuple[str, str]] = set()
    for index, push in enumerate(pushes):
        plat = Platform(push.platform)
        key = _clip(push.app_key, _APP_KEY_CHARS) if push.app_key else None
        for m in push.messages:
            if m.platform != plat.value:
                raise ValueError(f"inbox: a {m.platform} message in a {plat.value} push")
            if m.event == PushEvent.HEARTBEAT:
                continue
            message_id = _dedupe_key(m.message_id)
            if (plat.value, message_id) in seen:
                repeated[index] += 1
                continue
            seen.add((plat.value, message_id))
            problem = _problem(m)
            if problem is not None:
                reasons[(plat.value, message_id)] = problem
            rows.append(
                {
                    "platform": plat.value,
                    "message_id": message_id,
                    "app_key": key,
                    "topic": _clip(m.topic, _TOPIC_CHARS),
                    "event": m.event.value,
                    "shop_code": None if problem else m.shop_code,
                    "platform_order_id": None if problem else m.platform_order_id,
                    "occurred_at": _naive_utc(m.occurred_at),
                    "received_at": now,
                    "raw": bytes(m.raw),
                    "status": (InboxStatus.EXCEPTION if problem else InboxStatus.RECEIVED).value,
                    "attempts": 0,
                    "reason": problem,
                }
            )
            owners.append(index)
    if not rows:
        return [StoreResult([], repeated[i]) for i in range(len(pushes))]
    stored = _insert_new(session, rows)
    new_ids: list[list[int]] = [[] for _ in pushes]
    exception_ids: list[list[int]] = [[] for _ in pushes]
    known = list(repeated)
    items: list[dict[str, Any]] = []
    for row, owner in zip(rows, owners, strict=True):
        key2 = (row["platform"], row["message_id"])
        row_id = stored.get(key2)
        if row_id is None:
            known[owner] += 1
        elif key2 not in reasons:
            new_ids[owner].append(row_id)
        else:
            exception_ids[owner].append(row_id)
            items.append(
                _exception_item(
                    INVALID_MESSAGE_KIND,
                    row_id,
                    reasons[key2],
                    row["platform"],
                    row["app_key"],
                    row["message_id"],
                    len(row["raw"]),
                    now,
                )
            )
    _open_exceptions(session, items)
    fresh = [i for ids in new_ids for i in ids]
    for start in range(0, len(fresh), IDS_PER_JOB):
        outbox.enqueue(session, NORMALISE_TASK, *fresh[start : start + IDS_PER_JOB])
    return [StoreResult(new_ids[i], known[i], exception_ids[i]) for i in range(len(pushes))]


def _exception_item(
    kind: str,
    inbox_id: int,
    reason: str,
    platform: str,
    app_key: str | None,
    message_id: str,
    size: int,
    now: dt.datetime,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": f"inbox {inbox_id}",
        "reason": _clip(reason, _EXCEPTION_REASON_CHARS),
        "payload": {
            "inbox_id": inbox_id,
            "platform": platform,
            "app_key": app_key,
            "message_id": message_id,
            "bytes": size,
        },
        "status": "open",
        "created_at": now,
    }


def store_unparseable(
    session: Session,
    platform: str,
    app_key: str | None,
    body: bytes,
    reason: str,
    message_id: str | None = None,
) -> int | None:
    """Keep a correctly signed push that cannot be parsed, whole, with its reason; open an exception item.

    ``message_id``: the platform's, if it could be read; else a digest of the body. Returns the new inbox id,
    or None if this push was already stored (a retried delivery: nothing written).
    """
    plat = Platform(platform)
    now = _utcnow()
    key = _clip(app_key, _APP_KEY_CHARS) if app_key else None
    mid = _dedupe_key(message_id) if message_id else body_digest(body)
    why = _clip(reason or "unparseable", _REASON_CHARS)
    row = {
        "platform": plat.value,
        "message_id": mid,
        "app_key": key,
        "topic": UNPARSEABLE_TOPIC,
        "event": UNPARSEABLE_TOPIC,
        "shop_code": None,
        "platform_order_id": None,
        "occurred_at": None,
        "received_at": now,
        "raw": bytes(body),
        "status": InboxStatus.EXCEPTION.value,
        "attempts": 0,
        "reason": why,
    }
    stored = _insert_new(session, [row])
    if (plat.value, mid) not in stored:
        return None
    inbox_id = stored[(plat.value, mid)]
    _open_exceptions(
        session, [_exception_item(UNPARSEABLE_KIND, inbox_id, why, plat.value, key, mid, len(body), now)]
    )
    return inbox_id


def stats(engine: Engine) -> list[InboxCount]:
    """Messages per platform and status."""
    query = (
        select(InboxMessage.platform, InboxMessage.status, func.count())
        .group_by(InboxMessage.platform, InboxMessage.status)
        .order_by(InboxMessage.platform, InboxMessage.status)
    )
    with engine.connect() as conn:
        return [
            InboxCount(Platform(p).value, InboxStatus(s).value, int(n)) for p, s, n in conn.execute(query)
        ]
