"""The normalisation benchmark: a burst of Douyin messages in the inbox, normalised by rq workers.

What it measures is the job the receivers enqueue: reading the inbox rows, fetching the orders through the
platform's signed API (a page of orders per ``order.searchList`` call, or with ``listing=False`` one
``order.orderDetail`` call per order, as for an app not granted the listing), mapping SKUs, parsing
addresses, converging and writing the orders. The
inbox is filled as the receivers fill it (:func:`fulfil.intake.inbox.store_pushes`, outbox jobs drained to
rq), then ``workers`` processes forked from this one run rq's burst worker on the ``intake`` queue until it
is empty. The Douyin API is the platform fake, answering in-process through ``httpx.MockTransport`` after
``latency_ms`` (the round trip to the platform); its own work (checking each request's signature, building
the answer) is done in the workers, so the figure is a pessimistic one.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry
from sqlalchemy import Engine, func, select

from fulfil import db
from fulfil.domain.models import InboxMessage, InboxStatus
from fulfil.intake import inbox, loadgen, platforms
from fulfil.jobs import outbox
from fulfil.pii import Sealer
from integrations import doudian
from integrations.fakes import FakePlatform
from integrations.fakes.doudian import DoudianFake

PUSHES_PER_TRANSACTION = 50


class BusyQueue(RuntimeError):
    """The intake queue holds jobs already: the benchmark would measure them too."""


def delayed(handler: Callable[[httpx.Request], httpx.Response], latency_s: float) -> httpx.MockTransport:
    """A transport that answers with ``handler`` after ``latency_s`` seconds, like a remote API would."""

    def answer(request: httpx.Request) -> httpx.Response:
        if latency_s > 0:
            time.sleep(latency_s)
        return handler(request)

    return httpx.MockTransport(answer)


def fill_inbox(engine: Engine, fake: FakePlatform, orders: int, per_push: int) -> list[int]:
    """``orders`` new paid Douyin orders pushed into the inbox as the receivers store them; their ids."""
    credential = fake.credential
    ids: list[int] = []
    events = fake.create_orders(orders)
    pushes = [fake.push(events[i : i + per_push]) for i in range(0, len(events), per_push)]
    for start in range(0, len(pushes), PUSHES_PER_TRANSACTION):
        batch = [
            inbox.Push("doudian", credential.app_key, doudian.push.parse(headers, body, credential))
            for headers, body in pushes[start : start + PUSHES_PER_TRANSACTION]
        ]
        with db.session_scope(engine) as session:
            outbox.drain_with(session, lambda _rows: None)  # drained below, once, like a worker would
            for result in inbox.store_pushes(session, batch):
                ids.extend(result.new_ids)
    return ids


def _work() -> None:
    # A forked child: its own engine and Redis connection (both are keyed by pid), the parent's fake API.
    from fulfil import redis_conn

    SimpleWorker(["intake"], connection=redis_conn.connect()).work(burst=True, logging_level="WARNING")


def run(
    engine: Engine,
    connection: redis.Redis,
    sealer: Sealer,
    *,
    orders: int,
    workers: int,
    per_push: int = 100,
    latency_ms: float = 0.0,
    listing: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Fill, then normalise with ``workers`` forked burst workers; the figures as one JSON-able dict."""
    if orders < 1 or workers < 1:
        raise ValueError("orders and workers must be at least 1")
    credential = loadgen.default_credential("doudian")
    loadgen.setup(engine, sealer, credential)
    fake = loadgen.make_fake(credential, seed=seed)
    assert isinstance(fake, DoudianFake)
    fake.listing = listing
    queue = Queue("intake", connection=connection)
    if queue.count:
        raise BusyQueue(
            f"the intake queue already holds {queue.count} job(s); run the benchmark on an idle queue"
        )
    progress(f"filling the inbox with {orders:,} Douyin orders")
    started = time.perf_counter()
    ids = fill_inbox(engine, fake, orders, per_push)
    jobs = outbox.drain(engine, connection)
    filled_s = time.perf_counter() - started
    transport = delayed(fake.handler, latency_ms / 1000)
    platforms.set_http_client_factory(lambda _p: httpx.Client(transport=transport))
    progress(f"{len(ids):,} messages in {jobs} job(s); normalising with {workers} worker(s)")
    context = multiprocessing.get_context("fork")
    engine.dispose()  # the children must not share the parent's pooled connections
    started = time.perf_counter()
    procs = [context.Process(target=_work) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - started
    platforms.reset()
    failed = FailedJobRegistry(queue=queue).count
    with engine.connect() as conn:
        counts = {
            InboxStatus(s).value: int(n)
            for s, n in conn.execute(
                select(InboxMessage.status, func.count())
                .where(InboxMessage.id.between(min(ids), max(ids)))
                .group_by(InboxMessage.status)
            )
        }
    normalised = counts.get(InboxStatus.NORMALISED.value, 0)
    return {
        "orders": len(ids),
        "workers": workers,
        "per_job": inbox.IDS_PER_JOB,
        "latency_ms": latency_ms,
        "listing": listing,
        "fill_s": round(filled_s, 2),
        "seconds": round(seconds, 3),
        "orders_per_s": round(normalised / seconds, 1) if seconds > 0 else None,
        "statuses": counts,
        "failed_jobs": failed,
        "worker_exit_codes": sorted({p.exitcode for p in procs if p.exitcode is not None}),
    }
