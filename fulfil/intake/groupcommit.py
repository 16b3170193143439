"""Group commit: the pushes that arrive while one transaction commits are stored together in the next.

A push costs a transaction, an outbox row and an rq push; at a thousand single-order pushes a second those
fixed costs, not the rows, would bound the receiver. One writer thread per process takes every push waiting
in its queue (up to :data:`MAX_MESSAGES` messages), stores them in one transaction with
:func:`fulfil.intake.inbox.store_pushes`, pushes the group's outbox jobs to rq, and only then answers each
request (a future per push). Under light load a group is one push and nothing waits; under heavy load groups
grow by themselves, which is what keeps the latency flat. The outbox rows a group pushed are marked enqueued
by the next group's transaction (or a small one of their own when no push follows within
:data:`MARK_AFTER` seconds), not by a transaction of their own.

Durability is unchanged: a push is acknowledged only after the transaction holding it committed. A group that
fails for a reason other than the database being away is written again one push per transaction, so one bad
push never refuses the others. When Redis is away the outbox rows stay pending (a worker's periodic drain
moves them later) and the writer does not try Redis again for :data:`REDIS_BACKOFF` seconds, so an outage
costs no connect timeout per group. The thread starts on the first push and ends after :data:`IDLE_EXIT` idle
seconds; :meth:`GroupCommit.close` writes what is queued and stops it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.intake import inbox
from fulfil.jobs import outbox
from integrations.base import PushMessage

log = logging.getLogger(__name__)

MAX_MESSAGES = 5000  # per transaction: a group bigger than this waits for the next one
IDLE_EXIT = 5.0  # seconds without a push before the writer thread ends (it restarts on the next push)
REDIS_BACKOFF = 10.0  # seconds without trying Redis after a failed drain
MARK_AFTER = 0.05  # seconds to wait for a next group to mark the last one's jobs before marking them alone


@dataclass
class _Queued:
    push: inbox.Push
    future: Future[inbox.StoreResult]


class _Stop:
    pass


_STOP = _Stop()


class GroupCommit:
    """The writer of one process: :meth:`submit` a push, wait on the future for its :class:`StoreResult`."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        connect_redis: Callable[[], redis.Redis],
        *,
        max_messages: int = MAX_MESSAGES,
        idle_exit: float = IDLE_EXIT,
        redis_backoff: float = REDIS_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self._engine = engine
        self._redis = connect_redis
        self._max = max_messages
        self._idle = idle_exit
        self._backoff = redis_backoff
        self._clock = clock
        self._queue: queue.SimpleQueue[_Queued | _Stop] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._redis_retry_at = 0.0
        self._conn: Connection | None = None  # the writer thread's own, between groups
        self._pushed: list[int] = []  # outbox rows whose jobs are in rq, to be marked by the next transaction
        self.groups = 0  # transactions committed (for the curious and the tests)

    def submit(
        self, platform: str, app_key: str | None, messages: Sequence[PushMessage]
    ) -> Future[inbox.StoreResult]:
        """Queue a verified push for the next group; the future holds its result once committed."""
        item = _Queued(inbox.Push(platform, app_key, messages), Future())
        with self._lock:
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intake-group-commit", daemon=True)
                self._thread.start()
        return item.future

    def close(self, timeout: float = 30.0) -> None:
        """Write every queued push, then stop the writer thread (a later submit starts a new one)."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._queue.put(_STOP)
        thread.join(timeout)

    # --- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=MARK_AFTER if self._pushed else self._idle)
            except queue.Empty:
                if self._pushed:
                    self._mark_pushed()
                    continue
                self._release_connection()  # before the thread can be replaced: a new one opens its own
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            stop = isinstance(first, _Stop)
            group: list[_Queued] = [] if isinstance(first, _Stop) else [first]
            size = sum(len(g.push.messages) for g in group)
            while not stop and size < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = True
                    break
                group.append(item)
                size += len(item.push.messages)
            # A request whose client went away before its push was written: not stored, not acknowledged.
            live = [g for g in group if g.future.set_running_or_notify_cancel()]
            if live:
                self._write(live)
            if stop:
                self._mark_pushed()
                self._release_connection()
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                # Pushes queued after close(): keep going, the idle exit ends the thread later.

    def _write(self, group: list[_Queued]) -> None:
        try:
            results = self._store(group)
        except Exception as exc:
            if len(group) > 1 and not db.unavailable(exc):
                log.warning(
                    "intake: a group of %d pushes failed (%s: %s); writing them one by one",
                    len(group),
                    type(exc).__name__,
                    exc,
                )
                for item in group:
                    self._write([item])
                return
            for item in group:
                item.future.set_exception(exc)
            return
        for item, result in zip(group, results, strict=True):
            item.future.set_result(result)

    def _store(self, group: list[_Queued]) -> list[inbox.StoreResult]:
        jobs: list[outbox.Pending] = []
        with self._session() as session:
            outbox.drain_with(session, jobs.extend)
            with session.begin():
                marked = list(self._pushed)
                # The previous group's jobs are in rq: record it here, saving a transaction per group.
                outbox.mark_enqueued(session, marked)
                results = inbox.store_pushes(session, [g.push for g in group])
        self.groups += 1
        del self._pushed[: len(marked)]
        if jobs:
            self._push(jobs)
        return results

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session on the writer's own connection, kept between groups: a pool checkout would cost a
        round trip (the pre-ping) per group. A connection that failed is dropped and the next one is new."""
        if self._conn is None or self._conn.closed:
            self._conn = self._engine().connect()
        try:
            with Session(bind=self._conn, expire_on_commit=False) as session:
                yield session
        except Exception:
            self._close_connection()
            raise

    def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    def _push(self, jobs: list[outbox.Pending]) -> None:
        # Before the answers: the normalise jobs are in rq when the platform hears yes. Best effort all the
        # same, since the rows are committed and a worker's periodic drain moves whatever is left.
        if self._clock() < self._redis_retry_at:
            return
        try:
            outbox.push(self._redis(), jobs)
        except Exception as exc:
            self._redis_retry_at = self._clock() + self._backoff
            log.warning(
                "intake: %d committed outbox job(s) not pushed to rq (%s: %s); a worker's periodic drain"
                " will, and this writer tries again in %gs",
                len(jobs),
                type(exc).__name__,
                exc,
                self._backoff,
            )
            return
        self._pushed.extend(j.id for j in jobs)

    def _mark_pushed(self) -> None:
        """Record the last group's jobs as enqueued when no next group comes to carry the update."""
        if not self._pushed:
            return
        try:
            with self._session() as session, session.begin():
                outbox.mark_enqueued(session, self._pushed)
        except Exception as exc:
            # Unmarked rows are found by the next drain, which sees their jobs already in rq and marks them.
            log.warning("intake: outbox rows not marked enqueued (%s: %s)", type(exc).__name__, exc)
        self._pushed.clear()
