"""The transactional outbox: enqueue in the caller's transaction, drain after commit, exactly once."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import func, insert, select

from fulfil.db import session_scope, sessionmaker_for
from fulfil.domain.models import Batch, OutboxJob
from fulfil.jobs import outbox, tasks
from fulfil.jobs.outbox import JobArgumentError, UnknownQueue
from fulfil.jobs.tasks import UnknownTask
from tests.conftest import Backend
from tests.jobs_support import T0, run_fulfil, subprocess_env


def _rows(b: Backend) -> list[tuple[int, str, str, list[object], bool]]:
    with b.engine.connect() as conn:
        return [
            (r[0], r[1], r[2], list(r[3]), r[4] is not None)
            for r in conn.execute(
                select(
                    OutboxJob.id, OutboxJob.queue, OutboxJob.task, OutboxJob.args, OutboxJob.enqueued_at
                ).order_by(OutboxJob.id)
            )
        ]


def _pending_rows(b: Backend, n: int, task: str = "close_due_batches") -> list[int]:
    """Rows written without a session, as a process that died before its drain would leave them."""
    with b.engine.begin() as conn:
        conn.execute(
            insert(OutboxJob), [{"queue": "default", "task": task, "args": [], "created_at": T0}] * n
        )
        return list(conn.scalars(select(OutboxJob.id).order_by(OutboxJob.id)))


def test_a_committed_job_reaches_rq_with_ids_only(clean: Backend) -> None:
    with session_scope(clean.engine) as s:
        s.add(Batch(window_start=T0, window_end=T0))
        s.flush()
        job_row = outbox.enqueue(s, "plan_batch", 7)
        assert job_row.queue == "plan"
        assert Queue("plan", connection=clean.redis).count == 0  # not before the commit
    ((oid, queue, task, args, enqueued),) = _rows(clean)
    assert (queue, task, args, enqueued) == ("plan", "plan_batch", [7], True)
    job = Job.fetch(outbox.job_id_for(clean.engine, oid), connection=clean.redis)
    assert job.func_name == tasks.ENTRY_POINT
    assert job.args == ("plan_batch", 7) and job.kwargs == {}
    assert job.result_ttl == outbox.RESULT_TTL
    assert Queue("plan", connection=clean.redis).job_ids == [outbox.job_id_for(clean.engine, oid)]


def test_rollback_enqueues_nothing(clean: Backend) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"), session_scope(clean.engine) as s:
        outbox.enqueue(s, "close_due_batches")
        raise RuntimeError("changed my mind")
    assert _rows(clean) == []
    assert Queue("default", connection=clean.redis).count == 0
    # The same session object after a rollback: only what its next transaction writes is drained.
    with sessionmaker_for(clean.engine)() as s:
        outbox.enqueue(s, "close_due_batches")
        s.rollback()
        second = outbox.enqueue(s, "close_due_batches", "again")
        s.commit()
    assert [(r[3], r[4]) for r in _rows(clean)] == [(["again"], True)]
    assert Queue("default", connection=clean.redis).job_ids == [outbox.job_id_for(clean.engine, second.id)]


def test_unknown_task_is_refused_when_enqueued(clean: Backend) -> None:
    with pytest.raises(UnknownTask, match=r"unknown task 'plan_bacth'; registered tasks: .*plan_batch"):
        with session_scope(clean.engine) as s:
            outbox.enqueue(s, "plan_bacth", 1)
    with pytest.raises(UnknownQueue, match="unknown queue 'fast'"), session_scope(clean.engine) as s:
        outbox.enqueue(s, "plan_batch", 1, queue="fast")
    assert _rows(clean) == []


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (1.5, "is a float; jobs carry ids only"),
        (None, "is a NoneType"),
        ({"order": 1}, "is a dict"),
        ([1, 2], "is a list"),
        (True, "is a bool"),
        (b"12", "is a bytes"),
        ("two words", "is not an id"),
        ("x" * 65, "is not an id"),
        ("", "is not an id"),
        (2**63, "does not fit a 64-bit id"),
    ],
)
def test_only_ids_are_accepted(clean: Backend, arg: object, message: str) -> None:
    with pytest.raises(JobArgumentError, match=message), session_scope(clean.engine) as s:
        outbox.enqueue(s, "plan_batch", 1, arg)  # type: ignore[arg-type]
    assert _rows(clean) == []


def test_redis_down_never_fails_the_commit(
    clean: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(queue: Queue, row: outbox.Pending) -> bool:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(outbox, "_push", unreachable)
    with caplog.at_level(logging.WARNING, logger="fulfil.jobs.outbox"), session_scope(clean.engine) as s:
        s.add(Batch(window_start=T0, window_end=T0))
        outbox.enqueue(s, "close_due_batches")
    assert "1 committed job(s) not enqueued yet (ConnectionError" in caplog.text
    with clean.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Batch)) == 1  # the data committed
    assert [r[4] for r in _rows(clean)] == [False]  # the job waits in the outbox
    monkeypatch.undo()
    assert outbox.drain(clean.engine, clean.redis) == 1
    assert [r[4] for r in _rows(clean)] == [True]
    assert Queue("default", connection=clean.redis).count == 1


def test_drain_takes_every_pending_row_in_id_order(clean: Backend) -> None:
    ids = _pending_rows(clean, 25)
    assert outbox.drain(clean.engine, clean.redis, limit=10) == 25
    assert Queue("default", connection=clean.redis).job_ids == [
        outbox.job_id_for(clean.engine, i) for i in ids
    ]
    assert all(r[4] for r in _rows(clean))
    assert outbox.drain(clean.engine, clean.redis) == 0
    assert Queue("default", connection=clean.redis).count == 25
    with pytest.raises(ValueError, match="limit must be at least 1"):
        outbox.drain(clean.engine, clean.redis, limit=0)


def test_a_row_pushed_but_not_marked_is_not_pushed_again(clean: Backend) -> None:
    """What a drainer killed between the push and the mark leaves: the job in rq, the row pending."""
    (oid,) = _pending_rows(clean, 1)
    q = Queue("default", connection=clean.redis)
    with clean.engine.connect() as conn:
        created = conn.execute(select(OutboxJob.created_at).where(OutboxJob.id == oid)).scalar_one()
    assert outbox._push(q, outbox.Pending(oid, "default", "close_due_batches", [], created)) is True
    assert [r[4] for r in _rows(clean)] == [False]
    assert outbox.drain(clean.engine, clean.redis) == 1
    assert q.job_ids == [outbox.job_id_for(clean.engine, oid)]  # once, not twice
    # Even after the job ran and left the queue, its record keeps a late drain from pushing it again.
    q.remove(outbox.job_id_for(clean.engine, oid))
    assert outbox._push(q, outbox.Pending(oid, "default", "close_due_batches", [], created)) is False
    assert q.count == 0


def test_concurrent_drainers_in_threads_push_each_job_once(clean: Backend) -> None:
    ids = _pending_rows(clean, 300)
    start = threading.Barrier(4)
    counts: list[int] = []
    errors: list[BaseException] = []

    def drainer() -> None:
        try:
            start.wait(timeout=10)
            counts.append(outbox.drain(clean.engine, clean.redis, limit=7))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drainer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(counts) == 4
    assert sum(counts) == 300
    job_ids = Queue("default", connection=clean.redis).job_ids
    assert sorted(job_ids) == sorted(outbox.job_id_for(clean.engine, i) for i in ids)  # each exactly once
    assert all(r[4] for r in _rows(clean))


DRAINER = """
import os, sys, time
from fulfil import db, redis_conn
from fulfil.jobs import outbox

go = sys.argv[1]
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("the start signal never came")
    time.sleep(0.01)
print(outbox.drain(db.engine(), redis_conn.connect(), limit=5))
"""


def test_concurrent_drainers_in_processes_push_each_job_once(clean: Backend, tmp_path: Path) -> None:
    """Drainers on separate machines behave like separate processes: each job reaches rq once."""
    ids = _pending_rows(clean, 200)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRAINER, str(go)],
            env=subprocess_env(clean),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        time.sleep(1.5)  # let them import; they then start together
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sum(int(o[0].strip()) for o in outs) == 200
    job_ids = Queue("default", connection=clean.redis).job_ids
    assert len(job_ids) == 200 and set(job_ids) == {outbox.job_id_for(clean.engine, i) for i in ids}
    assert all(r[4] for r in _rows(clean))


def test_stats_counts_pending_and_enqueued_per_task(clean: Backend) -> None:
    _pending_rows(clean, 2, task="plan_batch")
    with session_scope(clean.engine) as s:
        outbox.enqueue(s, "close_due_batches")
    (close, plan) = outbox.stats(clean.engine)
    assert (close.task, close.pending, close.enqueued, close.oldest_pending) == (
        "close_due_batches",
        0,
        1,
        None,
    )
    assert (plan.task, plan.pending, plan.enqueued, plan.oldest_pending) == ("plan_batch", 2, 0, T0)


def test_a_drain_in_a_fresh_process_needs_no_session(clean: Backend) -> None:
    """``fulfil outbox drain`` from the command line drains what is pending."""
    (oid,) = _pending_rows(clean, 1)
    result = run_fulfil(clean, "outbox", "drain")
    assert result.returncode == 0, result.stderr
    assert "outbox: 1 job(s) drained" in result.stderr
    assert Queue("default", connection=clean.redis).job_ids == [outbox.job_id_for(clean.engine, oid)]


def test_a_recreated_database_does_not_take_its_new_jobs_for_old_ones(clean: Backend) -> None:
    """Row ids restart after a truncate while Redis keeps finished jobs; the new row must still be pushed."""
    with session_scope(clean.engine) as s:
        old = outbox.enqueue(s, "close_due_batches").id
    old_job = outbox.job_id_for(clean.engine, old)
    clean.truncate_tables_only()
    with session_scope(clean.engine) as s:
        new = outbox.enqueue(s, "close_due_batches").id
    assert new == old  # the id was reused ...
    new_job = outbox.job_id_for(clean.engine, new)
    assert new_job != old_job  # ... but the job id was not
    assert Queue("default", connection=clean.redis).job_ids == [old_job, new_job]
