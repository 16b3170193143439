"""The transactional outbox: jobs are rows written in the caller's transaction, pushed to rq after the commit.

Why: a job pushed to Redis before the commit can run against data that then rolls back; a job pushed after
the commit is lost if the process dies in between. Writing the job as a row in the same transaction makes
"the data changed" and "the job exists" one atomic fact; the drain then moves rows to rq.

Exactly-once enqueue: each row becomes the rq job ``outbox-<id>-<created>``, pushed with rq's atomic unique
enqueue (the job hash is created only if absent). A drainer that dies after pushing but before writing
``enqueued_at`` leaves the row pending; the next drain finds the job already in Redis and only marks the row.
Finished and failed jobs are kept for :data:`RESULT_TTL` seconds so that check still sees them. Rows are
locked while drained (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer lock is taken before
reading), so any number of drainers on any number of machines may run at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from sqlalchemy import Connection, Engine, case, event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from fulfil import db
from fulfil.domain.models import OutboxJob
from fulfil.jobs import tasks

log = logging.getLogger(__name__)

# Long enough that a drainer which died after pushing is always followed by a drain (any worker drains every
# second) while the job's record still exists.
RESULT_TTL = 7 * 24 * 3600
FAILURE_TTL = 30 * 24 * 3600
MAX_ID_STRING = 64
_INT64 = 2**63
_ID_STRING = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: an id, not a payload
_SESSION_KEY = "fulfil.outbox.pending"
_DEFER_KEY = "fulfil.outbox.drain_with"
_EPOCH = dt.datetime(1970, 1, 1)


class JobArgumentError(ValueError):
    """A job argument is not an id."""


class UnknownQueue(LookupError):
    pass


class Pending(NamedTuple):
    id: int
    queue: str
    task: str
    args: list[Any]
    created_at: dt.datetime


def job_id(outbox_id: int, created_at: dt.datetime) -> str:
    """The rq job id of an outbox row — deterministic, so a second push is detectable.

    The creation time (in microseconds) is part of it because row ids restart when a database is recreated or
    truncated while Redis keeps the finished jobs of the old rows: a bare id would match an old job, and the
    new job would never be pushed.
    """
    micros = round((created_at - _EPOCH).total_seconds() * 1_000_000)
    return f"outbox-{outbox_id}-{micros}"


def job_id_for(engine: Engine, outbox_id: int) -> str:
    """The rq job id of outbox row ``outbox_id``, read from the database (for operators and tests)."""
    with engine.connect() as conn:
        created = conn.execute(select(OutboxJob.created_at).where(OutboxJob.id == outbox_id)).scalar_one()
    return job_id(outbox_id, created)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _check_arg(task: str, position: int, value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_INT64 <= value < _INT64:
            raise JobArgumentError(f"task {task!r}: argument {position} ({value}) does not fit a 64-bit id")
        return value
    if isinstance(value, str):
        if len(value) > MAX_ID_STRING or not _ID_STRING.fullmatch(value):
            raise JobArgumentError(
                f"task {task!r}: argument {position} ({value[:40]!r}) is not an id; string ids are 1 to "
                f"{MAX_ID_STRING} printable characters without spaces"
            )
        return value
    raise JobArgumentError(
        f"task {task!r}: argument {position} is a {type(value).__name__}; jobs carry ids only (int or a "
        "short string) and the handler reads the rest from the database"
    )


_INSERT_PG = "INSERT INTO outbox (queue, task, args, created_at) VALUES (%s, %s, %s::json, %s) RETURNING id"
_INSERT_SQLITE = "INSERT INTO outbox (queue, task, args, created_at) VALUES (?, ?, ?, ?) RETURNING id"


def enqueue(session: Session, task: str, *ids: int | str, queue: str | None = None) -> Pending:
    """Add job ``task(*ids)`` to the outbox in ``session``'s transaction; it reaches rq after the commit.

    Raises :class:`~fulfil.jobs.tasks.UnknownTask`, :class:`JobArgumentError` or :class:`UnknownQueue` at
    once, so a typo fails where it is made rather than in a worker later.
    """
    tasks.check(task)
    args = [_check_arg(task, i, v) for i, v in enumerate(ids)]
    queue = queue or tasks.queue_for(task)
    if queue not in tasks.QUEUES:
        raise UnknownQueue(f"task {task!r}: unknown queue {queue!r}; queues: {', '.join(tasks.QUEUES)}")
    created = _utcnow()
    conn = session.connection()
    # Driver SQL: an ORM flush or even a Core insert costs several times the CPU of the round trip, and the
    # receivers' group commit enqueues on every transaction.
    when: dt.datetime | str = created
    sql = _INSERT_PG
    if conn.dialect.name != "postgresql":
        sql, when = _INSERT_SQLITE, created.isoformat(sep=" ", timespec="microseconds")
    row_id = conn.exec_driver_sql(sql, (queue, task, json.dumps(args), when)).scalar_one()
    row = Pending(int(row_id), queue, task, args, created)
    session.info.setdefault(_SESSION_KEY, []).append(row)  # the after-commit drain needs its id
    return row


# --- after commit ----------------------------------------------------------------------------------------


def drain_with(session: Session, take: Callable[[list[Pending]], None]) -> None:
    """After ``session`` commits, hand its new outbox rows to ``take`` instead of draining them here.

    For a caller that drains on its own schedule (the receiver's group commit drains once per group, with a
    back-off when Redis is away). ``take`` runs inside the commit's after-commit hook: it must not raise.
    """
    session.info[_DEFER_KEY] = take


@event.listens_for(Session, "after_commit")
def _drain_after_commit(session: Session) -> None:
    rows: list[Pending] | None = session.info.pop(_SESSION_KEY, None)
    if not rows:
        return
    take = session.info.get(_DEFER_KEY)
    if take is not None:
        take(rows)
        return
    ids = [r.id for r in rows]
    # Best effort: the rows are committed, so whatever fails here only delays them until a worker's periodic
    # drain; the commit itself must never fail because Redis is away.
    try:
        from fulfil import redis_conn

        bind = session.get_bind()
        engine = bind.engine if isinstance(bind, Connection) else bind
        drain(engine, redis_conn.connect(), ids=ids)
    except Exception as exc:
        log.warning(
            "outbox: %d committed job(s) not enqueued yet (%s: %s); a worker's periodic drain"
            " will enqueue them",
            len(ids),
            type(exc).__name__,
            exc,
        )


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list was already taken; after a rollback of the outermost transaction the rows do not
    # exist, so nothing is to be drained.
    if transaction.parent is None:
        session.info.pop(_SESSION_KEY, None)


# --- the drain -------------------------------------------------------------------------------------------


def drain(
    engine: Engine, connection: redis.Redis, limit: int = 1000, *, ids: Sequence[int] | None = None
) -> int:
    """Push pending outbox rows to rq in id order, ``limit`` rows per transaction; returns the rows drained.

    With ``ids``, only those rows (what one session wrote). Safe to run concurrently anywhere.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    total = 0
    if ids is not None:
        for start in range(0, len(ids), limit):
            total += _drain_chunk(engine, connection, limit, ids[start : start + limit])[0]
        return total
    while True:
        drained, seen = _drain_chunk(engine, connection, limit, None)
        total += drained
        if seen < limit:
            return total


def _drain_chunk(
    engine: Engine, connection: redis.Redis, limit: int, ids: Sequence[int] | None
) -> tuple[int, int]:
    with engine.begin() as conn:
        db.sqlite_write_lock(conn, "outbox")  # concurrent drainers queue up
        query = select(
            OutboxJob.id, OutboxJob.queue, OutboxJob.task, OutboxJob.args, OutboxJob.created_at
        ).where(OutboxJob.enqueued_at.is_(None))
        if ids is not None:
            query = query.where(OutboxJob.id.in_(list(ids)))
        rows = [
            Pending(*r)
            for r in conn.execute(query.order_by(OutboxJob.id).limit(limit).with_for_update(skip_locked=True))
        ]
        if not rows:
            return 0, 0
        pushed = push(connection, rows)
        mark_enqueued(conn, [r.id for r in rows])
    already = len(rows) - pushed
    log.info(
        "outbox: enqueued %d job(s) (%s)%s",
        pushed,
        _summary(r.task for r in rows),
        f"; {already} already in rq from an interrupted drain" if already else "",
    )
    return len(rows), len(rows)


def push(connection: redis.Redis, rows: Sequence[Pending]) -> int:
    """Push committed outbox rows to rq as their jobs; returns how many were new (not pushed before).

    Rows must be committed (a job may run at once) and are not marked: :func:`mark_enqueued` does that, in
    the caller's transaction. A row pushed but never marked is harmless: the next drain finds its job in rq
    and only marks it.
    """
    queues: dict[str, Queue] = {}
    pushed = 0
    for row in rows:
        if row.queue not in queues:
            queues[row.queue] = Queue(row.queue, connection=connection)
        pushed += _push(queues[row.queue], row)
    return pushed


def mark_enqueued(conn: Connection | Session, ids: Sequence[int]) -> None:
    """Record that the jobs of outbox rows ``ids`` are in rq (in the caller's transaction)."""
    if not ids:
        return
    target = conn.connection() if isinstance(conn, Session) else conn
    now = _utcnow()
    # Driver SQL: compiling an expanding IN per call costs more CPU than the round trip; the receivers' group
    # commit marks on every transaction.
    if target.dialect.name == "postgresql":
        target.exec_driver_sql(
            "UPDATE outbox SET enqueued_at = %s WHERE id = ANY(%s)", (now, [int(i) for i in ids])
        )
        return
    for start in range(0, len(ids), 500):  # SQLite: well under its bound-parameter limit
        chunk = [int(i) for i in ids[start : start + 500]]
        target.exec_driver_sql(
            f"UPDATE outbox SET enqueued_at = ? WHERE id IN ({', '.join('?' * len(chunk))})",
            (now.isoformat(sep=" ", timespec="microseconds"), *chunk),
        )


def _push(queue: Queue, row: Pending) -> bool:
    """Push ``row`` as its rq job (:func:`job_id`); False if that job exists (an earlier drain pushed it)."""
    try:
        queue.enqueue_call(
            tasks.ENTRY_POINT,
            args=(row.task, *row.args),
            job_id=job_id(row.id, row.created_at),
            description=f"{row.task}({', '.join(map(str, row.args))})",
            timeout=tasks.TIMEOUTS.get(row.task, tasks.DEFAULT_TIMEOUT),
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            unique=True,
        )
    except DuplicateJobError:
        return False
    return True


def _summary(names: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n}×{c}" if c > 1 else n for n, c in sorted(counts.items()))


# --- stats -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskStats:
    task: str
    pending: int
    enqueued: int
    oldest_pending: dt.datetime | None  # created_at of the oldest row still waiting for a drain


def stats(engine: Engine) -> list[TaskStats]:
    """Pending and enqueued row counts per task."""
    pending = OutboxJob.enqueued_at.is_(None)
    query = (
        select(
            OutboxJob.task,
            func.sum(case((pending, 1), else_=0)),
            func.sum(case((pending, 0), else_=1)),
            func.min(case((pending, OutboxJob.created_at), else_=None)),
        )
        .group_by(OutboxJob.task)
        .order_by(OutboxJob.task)
    )
    with engine.connect() as conn:
        return [TaskStats(t, int(p or 0), int(e or 0), o) for t, p, e, o in conn.execute(query)]
