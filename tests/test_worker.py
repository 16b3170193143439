"""Crash tests: a process SIGKILLed around the outbox drain, then a real `fulfil worker`: each job runs once.

The job under test is the ``close_due_batches`` tick: its effect is a closed batch and one ``plan_batch`` row.
Workers here listen on ``default`` only, so the planning jobs the tick enqueues wait in ``plan`` untouched.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from sqlalchemy import insert, select

from fulfil.domain.models import Batch, OutboxJob
from fulfil.jobs import outbox
from tests.conftest import Backend
from tests.jobs_support import FULFIL, run_fulfil, run_python, subprocess_env

# A batch whose window ended long ago, and the tick that closes it, committed together; then the drain's push
# is replaced by a fault. ``{fault}`` is the body of the replacement.
WRITER = """
import datetime as dt, os, signal
from fulfil import db
from fulfil.domain.models import Batch
from fulfil.jobs import outbox

real_push = outbox._push

def faulty_push(queue, row):
{fault}

outbox._push = faulty_push
with db.session_scope() as s:
    s.add(Batch(window_start=dt.datetime(2024, 6, 18, 20, 0), window_end=dt.datetime(2024, 6, 18, 20, 15)))
    outbox.enqueue(s, "close_due_batches")
print("survived the commit")
"""
KILL_BEFORE_PUSH = "    os.kill(os.getpid(), signal.SIGKILL)"
KILL_AFTER_PUSH = "    real_push(queue, row)\n    os.kill(os.getpid(), signal.SIGKILL)"


def _outbox(b: Backend) -> list[tuple[int, str, list[object], bool]]:
    with b.engine.connect() as conn:
        rows = conn.execute(
            select(OutboxJob.id, OutboxJob.task, OutboxJob.args, OutboxJob.enqueued_at).order_by(OutboxJob.id)
        )
        return [(r[0], r[1], list(r[2]), r[3] is not None) for r in rows]


def _batches(b: Backend) -> list[tuple[int, str, str | None]]:
    with b.engine.connect() as conn:
        return [
            (r[0], str(r[1]), r[2]) for r in conn.execute(select(Batch.id, Batch.status, Batch.close_reason))
        ]


def _assert_ran_once(b: Backend, tick_row: int) -> None:
    default = Queue("default", connection=b.redis)
    assert FinishedJobRegistry(queue=default).get_job_ids() == [outbox.job_id_for(b.engine, tick_row)]
    assert FailedJobRegistry(queue=default).get_job_ids() == []
    assert default.count == 0
    job = Job.fetch(outbox.job_id_for(b.engine, tick_row), connection=b.redis)
    assert job.get_status() == JobStatus.FINISHED
    assert len(job.results()) == 1  # one execution recorded, not two
    # The effect, once: the batch closed by its window, and exactly one planning job for it.
    ((bid, status, reason),) = _batches(b)
    assert (status, reason) == ("closed", "window")
    rows = _outbox(b)
    assert rows[0] == (tick_row, "close_due_batches", [], True)
    assert [(task, args) for _, task, args, _ in rows[1:]] == [("plan_batch", [bid])]
    assert Queue("plan", connection=b.redis).count == 1  # drained by the job's own commit, not run here


def test_kill_between_commit_and_enqueue_the_job_still_runs_once(clean: Backend) -> None:
    writer = run_python(clean, WRITER.format(fault=KILL_BEFORE_PUSH))
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    assert "survived" not in writer.stdout
    # Committed, not enqueued.
    ((row, task, _, enqueued),) = _outbox(clean)
    assert (task, enqueued) == ("close_due_batches", False)
    assert [s for _, s, _ in _batches(clean)] == ["open"]
    assert not Job.exists(outbox.job_id_for(clean.engine, row), connection=clean.redis)

    worker = run_fulfil(clean, "worker", "--burst", "--queue", "default")
    assert worker.returncode == 0, worker.stderr
    _assert_ran_once(clean, row)
    assert "outbox: enqueued 1 job(s) (close_due_batches)" in worker.stderr

    # Another burst worker finds nothing to do: no second run.
    again = run_fulfil(clean, "worker", "--burst", "--queue", "default")
    assert again.returncode == 0, again.stderr
    _assert_ran_once(clean, row)


def test_kill_after_push_before_marking_the_job_is_not_pushed_again(clean: Backend) -> None:
    writer = run_python(clean, WRITER.format(fault=KILL_AFTER_PUSH))
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    ((row, _, _, enqueued),) = _outbox(clean)
    assert enqueued is False  # the mark never happened...
    default = Queue("default", connection=clean.redis)
    assert default.job_ids == [outbox.job_id_for(clean.engine, row)]  # ...but the push did

    worker = run_fulfil(clean, "worker", "--burst", "--queue", "default")
    assert worker.returncode == 0, worker.stderr
    _assert_ran_once(clean, row)
    assert "1 already in rq from an interrupted drain" in worker.stderr


def test_a_running_worker_drains_rows_left_by_a_crashed_process(clean: Backend) -> None:
    proc = subprocess.Popen(
        [FULFIL, "worker", "--queue", "default", "--drain-interval", "0.5", "--tick-interval", "0"],
        env=subprocess_env(clean),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the worker is up and idle before the row appears
        with clean.engine.begin() as conn:
            conn.execute(
                insert(Batch).values(
                    status="open",
                    window_start=dt.datetime(2024, 6, 18, 20, 0),
                    window_end=dt.datetime(2024, 6, 18, 20, 15),
                    order_count=0,
                )
            )
            row = conn.execute(
                insert(OutboxJob)
                .values(
                    queue="default", task="close_due_batches", args=[], created_at=dt.datetime(2024, 6, 18)
                )
                .returning(OutboxJob.id)
            ).scalar_one()
        deadline = time.monotonic() + 30
        finished = FinishedJobRegistry(queue=Queue("default", connection=clean.redis))
        while outbox.job_id_for(clean.engine, row) not in finished.get_job_ids():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the worker never ran the pending job"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "queues default, outbox drain every 0.5s" in err
    _assert_ran_once(clean, row)


def test_worker_refuses_an_unknown_queue(clean: Backend) -> None:
    result = run_fulfil(clean, "worker", "--burst", "--queue", "nowhere")
    assert result.returncode == 2
    assert "'nowhere' is not one of 'intake', 'plan', 'dispatch', 'default'" in result.stderr


@pytest.mark.parametrize("queues", [(), ("default", "plan", "default")])
def test_check_queues(queues: tuple[str, ...]) -> None:
    from fulfil.jobs.worker import check_queues

    assert check_queues(queues) == (
        ["intake", "plan", "dispatch", "default"] if not queues else ["default", "plan"]
    )
    with pytest.raises(ValueError, match="unknown queue"):
        check_queues(["fast"])


def test_one_batching_tick_per_interval_however_many_workers(clean: Backend) -> None:
    from fulfil.jobs.worker import OutboxWorker

    workers = [
        OutboxWorker(
            ["default"], drain_interval=1.0, tick_interval=60.0, connection=clean.redis, name=f"w{i}"
        )
        for i in range(3)
    ]
    t0 = 1_800_000_000.0  # inside one 60-second slot
    assert [w.tick_if_due(now=t0) for w in workers] == [True, False, False]
    # The same worker does not look again before its interval has passed, whatever the wall clock says.
    assert workers[1].tick_if_due(now=t0 + 60) is False
    with clean.engine.connect() as conn:
        tasks_written = conn.execute(select(OutboxJob.task)).scalars().all()
    assert tasks_written == ["close_due_batches", "dispatch_due"]
    # The next slot, offered by a worker whose interval has passed, is taken once more.
    workers[2]._last_tick = None
    assert workers[2].tick_if_due(now=t0 + 60) is True
    # each tick reached rq after its commit
    assert Queue("default", connection=clean.redis).count == 2
    assert Queue("dispatch", connection=clean.redis).count == 2


def test_a_long_running_worker_closes_due_batches_by_itself(clean: Backend) -> None:
    """No operator and no demo clock: the worker's own tick batches paid orders and closes ended windows."""
    from tests.jobs_support import add_orders

    add_orders(clean.engine, [dt.datetime(2024, 6, 18, 20, 5)] * 3)  # paid in a window that ended long ago
    proc = subprocess.Popen(
        [FULFIL, "worker", "--queue", "default", "--drain-interval", "0.5", "--tick-interval", "1"],
        env=subprocess_env(clean),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with clean.engine.connect() as conn:
                closed = conn.execute(
                    select(Batch.order_count, Batch.close_reason).where(Batch.status == "closed")
                ).all()
            if closed:
                break
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the worker never closed the due batch"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert closed == [(3, "window")]
