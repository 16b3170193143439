"""``fulfil worker``: an rq worker over the project's queues that also drains the outbox periodically.

The drain runs in the worker's own loop, between dequeues, rather than in a thread: rq forks a work-horse per
job, and forking while another thread holds a lock (logging, a connection pool) can deadlock the child. Any
running worker therefore enqueues the rows a crashed process left pending, within about one drain interval.

Each work-horse is a fresh fork: :func:`fulfil.db.engine` and :func:`fulfil.redis_conn.connect` are keyed by
pid, so a job never reuses its parent's database or Redis connections.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from rq import Worker
from rq.exceptions import StopRequested

from fulfil import db
from fulfil.jobs import outbox, tasks

log = logging.getLogger(__name__)

DEFAULT_DRAIN_INTERVAL = 1.0
# Batches close on their windows only if something looks at the clock: every running worker offers a
# ``close_due_batches`` tick this often, and one of them (per interval, across all machines) enqueues it.
DEFAULT_TICK_INTERVAL = 60.0
TICK_KEY = "fulfil:batch-tick:{slot}"


class OutboxWorker(Worker):
    """An rq :class:`~rq.Worker` that drains the outbox at least every ``drain_interval`` seconds."""

    def __init__(
        self,
        queues: Sequence[str],
        *,
        drain_interval: float,
        tick_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(list(queues), **kwargs)
        if drain_interval <= 0:
            raise ValueError(f"drain interval must be positive, got {drain_interval}")
        if tick_interval is not None and tick_interval <= 0:
            raise ValueError(f"tick interval must be positive, got {tick_interval}")
        self.drain_interval = drain_interval
        self.tick_interval = tick_interval
        self._last_drain: float | None = None
        self._last_tick: float | None = None

    def tick_if_due(self, now: float | None = None) -> bool:
        """Enqueue the batching tick if this interval's slot is free; True if this worker took it.

        The slot is claimed with ``SET NX`` on the shared Redis, so however many workers run, one tick is
        enqueued per interval. ``now`` (epoch seconds) is injectable for tests.
        """
        if self.tick_interval is None:
            return False
        clock = time.monotonic()
        if self._last_tick is not None and clock - self._last_tick < self.tick_interval:
            return False
        self._last_tick = clock
        slot = int((time.time() if now is None else now) // self.tick_interval)
        try:
            claimed = self.connection.set(
                TICK_KEY.format(slot=slot), self.name, nx=True, ex=math.ceil(self.tick_interval * 2)
            )
            if not claimed:
                return False
            with db.session_scope() as session:
                outbox.enqueue(session, "close_due_batches")
                outbox.enqueue(session, "dispatch_due")
        except StopRequested:
            raise
        except Exception as exc:
            log.error("batching tick not enqueued (%s: %s)", type(exc).__name__, exc)
            return False
        self.intake_tick()
        return True

    def intake_tick(self) -> None:
        """In the same slot: pulls of the pulled platforms' shops, and the intake and dispatch retries due.

        Their own transactions, so a failure here never costs the batching tick.
        """
        try:
            from fulfil.intake import normalise, pulls, shipback

            with db.session_scope() as session:
                pulls.schedule_pulls(session)
                normalise.requeue_due(session, connection=self.connection)
                shipback.requeue_due(session, connection=self.connection)
            from fulfil.dispatch import pickups, waybills

            with db.session_scope() as session:
                waybills.requeue_due(session)
                pickups.requeue_due(session)
        except StopRequested:
            raise
        except Exception as exc:
            log.error("intake tick failed (%s: %s)", type(exc).__name__, exc)

    def drain_outbox(self) -> int:
        """Drain now; a failure is logged and retried at the next interval, never fatal to the worker."""
        self._last_drain = time.monotonic()
        try:
            return outbox.drain(db.engine(), self.connection)
        except StopRequested:
            raise  # SIGTERM while idle: rq raises this from its signal handler; the drain rolled back
        except Exception as exc:
            log.error(
                "outbox drain failed (%s: %s); retrying in %.1fs",
                type(exc).__name__,
                exc,
                self.drain_interval,
            )
            return 0

    def _drain_if_due(self) -> int:
        if self._last_drain is None or time.monotonic() - self._last_drain >= self.drain_interval:
            return self.drain_outbox()
        return 0

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        if timeout is None:
            # Burst: drain, take what is queued; when nothing is, drain once more in case jobs arrived.
            self._drain_if_due()
            result = super().dequeue_job_and_maintain_ttl(None, max_idle_time)
            if result is None and self.drain_outbox():
                result = super().dequeue_job_and_maintain_ttl(None, max_idle_time)
            return result
        # Block on Redis for at most one drain interval at a time (BLPOP counts whole seconds).
        step = max(1, math.ceil(self.drain_interval))
        deadline = None if max_idle_time is None else time.monotonic() + max_idle_time
        while True:
            self.tick_if_due()
            self._drain_if_due()
            wait = step
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = max(1, min(step, math.ceil(left)))
            result = super().dequeue_job_and_maintain_ttl(min(timeout, wait), max_idle_time=wait)
            if result is not None or self._stop_requested:
                return result


def worker_name() -> str:
    # Unique even for pid 1 in a restarted container with the same hostname.
    return f"fulfil.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def check_queues(queues: Sequence[str]) -> list[str]:
    unknown = [q for q in queues if q not in tasks.QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; queues: {', '.join(tasks.QUEUES)}")
    return list(dict.fromkeys(queues)) or list(tasks.QUEUES)


def run(
    connection: redis.Redis,
    queues: Sequence[str] = (),
    *,
    burst: bool = False,
    drain_interval: float = DEFAULT_DRAIN_INTERVAL,
    tick_interval: float | None = DEFAULT_TICK_INTERVAL,
    logging_level: str = "INFO",
) -> bool:
    """Run a worker until stopped (or, with ``burst``, until the queues and the outbox are empty).

    ``tick_interval`` None: this worker never offers the batching tick (a burst worker never does).
    Returns whether any job was processed.
    """
    names = check_queues(queues)
    # Import every handler once here, so each forked work-horse starts with them loaded instead of paying
    # the imports (numpy, the solvers) again for every job.
    for task in tasks.REGISTRY:
        tasks.resolve(task)
    worker = OutboxWorker(
        names,
        drain_interval=drain_interval,
        tick_interval=None if burst else tick_interval,
        connection=connection,
        name=worker_name(),
    )
    log.info(
        "worker %s: queues %s, outbox drain every %.1fs%s",
        worker.name,
        ", ".join(names),
        drain_interval,
        ", burst" if burst else "",
    )
    worked: bool = worker.work(burst=burst, logging_level=logging_level)
    return worked
