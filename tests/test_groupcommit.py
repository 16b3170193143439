"""Group commit: concurrent pushes share a transaction, each gets its own answer, and none is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fulfil.domain.models import InboxMessage, OutboxJob
from fulfil.intake import groupcommit, inbox
from fulfil.intake.groupcommit import GroupCommit
from integrations.base import PushMessage
from tests.conftest import Backend
from tests.test_inbox import msg


class Gate:
    """Holds the writer inside its first store until released, so the next pushes queue up behind it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []  # pushes per store_pushes call
        real = inbox.store_pushes

        def store(session: Session, pushes: Sequence[inbox.Push]) -> list[inbox.StoreResult]:
            self.calls.append(len(pushes))
            if len(self.calls) == 1:
                self.entered.set()
                assert self.release.wait(10), "the gate was never opened"
            return real(session, pushes)

        monkeypatch.setattr(inbox, "store_pushes", store)

    def hold(self, writer: GroupCommit) -> Future[inbox.StoreResult]:
        """Submit a first push ("a") and return once the writer is inside its store, held at the gate."""
        first = writer.submit("doudian", "7001", push("a"))
        assert self.entered.wait(10)
        return first


@pytest.fixture
def writer(clean: Backend) -> Iterator[GroupCommit]:
    w = GroupCommit(lambda: clean.engine, lambda: clean.redis)
    yield w
    w.close()


def count(b: Backend, model: Any, *where: Any) -> int:
    with b.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def push(*ids: str) -> list[PushMessage]:
    return [msg(i, order=f"69{n:05d}") for n, i in enumerate(ids)]


def test_pushes_waiting_behind_a_commit_share_the_next_transaction(
    clean: Backend, writer: GroupCommit, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    first = gate.hold(writer)
    # Behind it: three pushes, one repeating a message of another (a platform retry racing the original).
    waiting = [
        writer.submit("doudian", "7001", push("b", "c")),
        writer.submit("doudian", "7001", push("d")),
        writer.submit("doudian", "7001", push("c", "e")),
    ]
    gate.release.set()
    results = [first.result(10)] + [f.result(10) for f in waiting]
    assert gate.calls == [1, 3]  # two transactions for four pushes
    assert writer.groups == 2
    assert [(len(r.new_ids), r.duplicates) for r in results] == [(1, 0), (2, 0), (1, 0), (1, 1)]
    assert count(clean, InboxMessage) == 5
    # One normalise job per transaction, each holding that transaction's new ids, already in rq.
    jobs = Queue("intake", connection=clean.redis).jobs
    assert sorted(len(j.args) - 1 for j in jobs) == [1, 4]
    assert {i for j in jobs for i in j.args[1:]} == {i for r in results for i in r.new_ids}


def test_one_bad_push_does_not_refuse_the_others_of_its_group(
    clean: Backend, writer: GroupCommit, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    first = gate.hold(writer)
    good = writer.submit("doudian", "7001", push("b"))
    bad = writer.submit("doudian", "7001", [msg("x", platform="kuaishou")])  # not a Douyin message
    also_good = writer.submit("doudian", "7001", push("c"))
    gate.release.set()
    assert len(first.result(10).new_ids) == 1
    assert len(good.result(10).new_ids) == 1 and len(also_good.result(10).new_ids) == 1
    with pytest.raises(ValueError, match="a kuaishou message in a doudian push"):
        bad.result(10)
    assert gate.calls == [1, 3, 1, 1, 1]  # the group failed whole, then each push alone
    assert count(clean, InboxMessage) == 3


def test_a_database_that_is_away_fails_every_push_of_the_group(clean: Backend) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    from fulfil.db import make_engine

    away = make_engine(url)
    w = GroupCommit(lambda: away, lambda: clean.redis)
    try:
        futures = [w.submit("doudian", "7001", push(f"m{i}")) for i in range(3)]
        for f in futures:
            with pytest.raises(OperationalError):
                f.result(30)
    finally:
        w.close()
        away.dispose()


def test_a_cancelled_request_is_not_written(
    clean: Backend, writer: GroupCommit, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    first = gate.hold(writer)
    gone = writer.submit("doudian", "7001", push("b"))
    assert gone.cancel()  # the client went away before its push was written: it was never acknowledged
    kept = writer.submit("doudian", "7001", push("c"))
    gate.release.set()
    assert first.result(10).new_ids and kept.result(10).new_ids
    assert count(clean, InboxMessage) == 2


def test_jobs_are_marked_enqueued_by_the_next_group_or_when_the_queue_runs_dry(
    clean: Backend, writer: GroupCommit
) -> None:
    pending = OutboxJob.enqueued_at.is_(None)
    writer.submit("doudian", "7001", push("a")).result(10)
    writer.submit("doudian", "7001", push("b")).result(10)
    # The second transaction marked the first one's job; its own waits for a next group or the quiet.
    assert count(clean, OutboxJob) == 2
    assert count(clean, OutboxJob, pending) <= 1
    writer.close()  # what is pushed is marked before the thread ends
    assert count(clean, OutboxJob, pending) == 0
    assert Queue("intake", connection=clean.redis).count == 2


def test_redis_away_leaves_jobs_to_the_periodic_drain_and_backs_off(clean: Backend) -> None:
    now = [100.0]
    attempts: list[int] = []

    def down() -> redis.Redis:
        attempts.append(1)
        raise redis.ConnectionError("Redis is away")

    w = GroupCommit(lambda: clean.engine, down, redis_backoff=10.0, clock=lambda: now[0])
    try:
        results = [w.submit("doudian", "7001", push(f"m{i}")).result(10) for i in range(3)]
        assert all(r.new_ids for r in results)  # stored and acknowledged all the same
        assert len(attempts) == 1  # tried once, then left alone for the back-off
        now[0] += 11.0
        w.submit("doudian", "7001", push("late")).result(10)
        assert len(attempts) == 2
    finally:
        w.close()
    assert count(clean, OutboxJob, OutboxJob.enqueued_at.is_(None)) == 4  # for a worker's periodic drain


def test_the_writer_thread_ends_when_idle_and_a_later_push_starts_another(clean: Backend) -> None:
    w = GroupCommit(lambda: clean.engine, lambda: clean.redis, idle_exit=0.05)
    try:
        w.submit("doudian", "7001", push("a")).result(10)
        first = w._thread
        assert first is not None
        first.join(10)
        assert not first.is_alive() and w._thread is None
        w.submit("doudian", "7001", push("b")).result(10)
        assert w._thread is not None and w._thread is not first
    finally:
        w.close()
    assert count(clean, InboxMessage) == 2
    assert count(clean, OutboxJob, OutboxJob.enqueued_at.is_(None)) == 0


def test_a_group_is_capped_by_messages(clean: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    w = GroupCommit(lambda: clean.engine, lambda: clean.redis, max_messages=4)
    try:
        first = gate.hold(w)
        rest = [w.submit("doudian", "7001", push(f"b{i}", f"c{i}")) for i in range(3)]
        gate.release.set()
        for f in [first, *rest]:
            f.result(10)
    finally:
        w.close()
    assert gate.calls == [1, 2, 1]  # 2 + 2 messages fill a group; the third push waits for the next


def test_max_messages_must_be_positive(clean: Backend) -> None:
    with pytest.raises(ValueError, match="max_messages must be at least 1"):
        GroupCommit(lambda: clean.engine, lambda: clean.redis, max_messages=0)
    assert groupcommit.MAX_MESSAGES >= 1000
