"""Intake under faults: the API SIGKILLed while pushes are in flight, a normalising worker SIGKILLed mid-job,
Redis restarted (empty) mid-load. Every wait is bounded; nothing sleeps longer than a poll interval."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from sqlalchemy import func, select

from fulfil import db, settings
from fulfil.domain.models import InboxMessage, InboxStatus, Order, OutboxJob
from fulfil.intake import normalise, platforms
from fulfil.jobs import outbox
from integrations import doudian
from integrations.fakes.doudian import DoudianFake
from tests.conftest import Backend
from tests.jobs_support import FULFIL, subprocess_env
from tests.test_normalise import DOUDIAN, DOUDIAN_SHOP, SKU_CODES, deliver, register, seed_shop

CONTRACT = b'{"code":0,"msg":"success"}'
LATER = dt.timedelta(minutes=3)  # past normalise.ORPHAN_AFTER: a lost job's rows are due again


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Any, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def fake(seed: int = 3) -> DoudianFake:
    return DoudianFake(DOUDIAN, sku_codes=SKU_CODES, shop_codes=[DOUDIAN_SHOP], seed=seed)


@pytest.fixture
def apis() -> Iterator[dict[str, Any]]:
    """platform -> the fake answering its API, for every client made in this process (and its forks)."""
    registry: dict[str, Any] = {}

    def factory(platform: str) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(lambda r: registry[platform](r)))

    platforms.set_http_client_factory(factory)
    yield registry
    platforms.reset()


def assert_each_message_is_one_order(b: Backend) -> None:
    """Every inbox message normalised with the order it is about; one order per platform order id."""
    with b.engine.connect() as conn:
        msgs = conn.execute(
            select(
                InboxMessage.status,
                InboxMessage.order_id,
                InboxMessage.platform_order_id,
                InboxMessage.reason,
            )
        ).all()
        orders = dict(conn.execute(select(Order.id, Order.platform_order_id)).all())
        per_number = conn.execute(
            select(Order.platform, Order.platform_order_id, func.count()).group_by(
                Order.platform, Order.platform_order_id
            )
        ).all()
    assert msgs
    normalised = {number for status, _, number, _ in msgs if InboxStatus(status) == InboxStatus.NORMALISED}
    for status, order_id, number, reason in msgs:
        if InboxStatus(status) == InboxStatus.NORMALISED:
            assert order_id is not None and orders[order_id] == number
        else:
            # A later message about an order another message already brought up to date: ignored, not lost.
            assert InboxStatus(status) == InboxStatus.IGNORED and number in normalised, (
                number,
                status,
                reason,
            )
    assert all(n == 1 for _, _, n in per_number)
    assert len(orders) == len({number for _, _, number, _ in msgs})


def run_intake_burst(connection: redis.Redis) -> None:
    """An in-process burst worker on the intake queue (no fork: it sees this process's fake API)."""
    SimpleWorker(["intake"], connection=connection).work(burst=True, logging_level="WARNING")
    assert FailedJobRegistry(queue=Queue("intake", connection=connection)).get_job_ids() == []


# ---- 2. kill -9 of the API while pushes are in flight ------------------------------------------------------


def test_every_acknowledged_push_survives_a_sigkill_of_the_api(clean: Backend) -> None:
    register(clean, DOUDIAN, merchant_code=None)
    f = fake()
    pushes: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
    for event in f.create_orders(2000):
        headers, body = f.push(event)
        pushes.put((event.message_id, headers, body))
    port = free_port()
    proc = subprocess.Popen(
        [FULFIL, "serve", "--port", str(port)],
        env=subprocess_env(clean),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def up() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def sender() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set():
                try:
                    message_id, headers, body = pushes.get_nowait()
                except queue.Empty:
                    return
                try:
                    r = client.post("/webhooks/doudian", content=body, headers=headers)
                except httpx.TransportError:
                    failed.append(message_id)
                    continue
                if r.status_code == 200 and r.content == CONTRACT:
                    acked.append(message_id)
                else:
                    failed.append(message_id)

    try:
        wait_until("the API to come up", up, timeout=30, every=0.1)
        threads = [threading.Thread(target=sender, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        wait_until("some pushes acknowledged", lambda: len(acked) >= 40, timeout=60, every=0.01)
        proc.send_signal(signal.SIGKILL)  # while six senders have requests in flight
        proc.wait(timeout=10)
        wait_until("the senders to see the API gone", lambda: len(failed) >= 6, timeout=30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    assert proc.returncode == -signal.SIGKILL
    with clean.engine.connect() as conn:
        stored = dict(conn.execute(select(InboxMessage.message_id, InboxMessage.status)).all())
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged push(es) lost, e.g. {sorted(missing)[:3]}"
    # Nothing half-stored: whatever is in the inbox is whole and waiting for normalisation.
    assert set(stored.values()) == {InboxStatus.RECEIVED.value}
    assert len(stored) >= len(acked) and pushes.qsize() > 0  # the kill really came mid-load


# ---- 3. kill -9 of a worker mid-normalisation --------------------------------------------------------------


def _normalise_in_chunks(ids: list[int], size: int) -> None:
    for i in range(0, len(ids), size):
        normalise.normalise_inbox(*ids[i : i + size])
    os._exit(0)


def test_a_worker_killed_mid_normalisation_leaves_each_message_one_order(
    clean: Backend, apis: dict[str, Any]
) -> None:
    seed_shop(clean.engine, "doudian", DOUDIAN_SHOP, SKU_CODES)
    register(clean, DOUDIAN)
    f = fake()
    events = f.create_orders(60)
    events += [f.cancel(e.order_id) for e in events[:10]]  # a second message about some orders
    ids = deliver(clean, f, doudian.push, events)
    assert len(ids) == 70

    ctx = multiprocessing.get_context("fork")
    blocked = ctx.Event()
    parent = os.getpid()
    fetched = [0]

    def answer(request: httpx.Request) -> httpx.Response:
        if os.getpid() != parent:
            fetched[0] += 1
            if fetched[0] > 25:  # past two whole jobs of ten: the third hangs in its fetch
                blocked.set()
                time.sleep(60)
        response: httpx.Response = f.handler(request)
        return response

    apis["doudian"] = answer
    clean.engine.dispose()  # the child opens its own connections
    child = ctx.Process(target=_normalise_in_chunks, args=(ids, 10))
    child.start()
    try:
        assert blocked.wait(timeout=60), "the child never reached its third job"
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.kill()
            child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    with clean.engine.connect() as conn:
        states = conn.execute(select(InboxMessage.status, func.count()).group_by(InboxMessage.status)).all()
    done = dict((InboxStatus(s), n) for s, n in states)
    assert 0 < done.get(InboxStatus.NORMALISED, 0) < 70  # killed with some, not all, of the work done

    # Recovery: the periodic sweep (its clock past the lost-job threshold), then a fresh worker. The jobs the
    # pushes enqueued are still in rq as well: running them again must change nothing.
    with db.session_scope(clean.engine) as s:
        assert normalise.requeue_due(s, now=dt.datetime.now(dt.UTC).replace(tzinfo=None) + LATER) > 0
    outbox.drain(clean.engine, clean.redis)
    run_intake_burst(clean.redis)
    assert_each_message_is_one_order(clean)


# ---- 4. Redis restarted mid-load ---------------------------------------------------------------------------


class ThrowawayRedis:
    """Our own redis-server on a free port, never the machine's shared one; no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            try:
                return bool(probe.ping())
            except redis.ConnectionError:
                return False

        wait_until("redis-server to answer", answers, timeout=20)
        probe.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def throwaway_redis(clean: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    monkeypatch.setenv("REDIS_URL", server.url)
    settings.get.cache_clear()
    try:
        yield server
    finally:
        server.kill()
        monkeypatch.undo()
        settings.get.cache_clear()


def test_pushes_are_acknowledged_while_redis_is_down_and_normalised_once_after(
    clean: Backend, throwaway_redis: ThrowawayRedis, apis: dict[str, Any]
) -> None:
    from litestar.testing import TestClient

    from fulfil.api.app import create_app
    from fulfil.intake import credentials

    seed_shop(clean.engine, "doudian", DOUDIAN_SHOP, SKU_CODES)
    register(clean, DOUDIAN)
    f = fake()
    apis["doudian"] = f.handler
    s = settings.get()
    assert s.redis_url == throwaway_redis.url
    rq_conn = redis.Redis.from_url(throwaway_redis.url, socket_connect_timeout=2)
    answers: list[tuple[str, int, bytes]] = []

    def send(n: int, client: TestClient[Any]) -> None:
        for event in f.create_orders(n):
            headers, body = f.push(event)
            r = client.post("/webhooks/doudian", content=body, headers=headers)
            answers.append((event.message_id, r.status_code, r.content))

    with TestClient(create_app(s)) as client:
        send(10, client)
        assert Queue("intake", connection=rq_conn).count == 10  # drained after each commit while Redis is up
        throwaway_redis.kill()
        send(15, client)  # Redis is away: acknowledged all the same, their jobs stay in the outbox
        throwaway_redis.start()  # back, and empty: the first ten jobs are gone with it
        # Within the receiver's Redis back-off: acknowledged, their jobs left to the periodic drain.
        send(5, client)
    credentials.invalidate_cache()
    assert all((status, content) == (200, CONTRACT) for _, status, content in answers), answers
    with clean.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(OutboxJob).where(OutboxJob.enqueued_at.is_(None))
            ).scalar_one()
            == 20
        )
        stored = set(conn.execute(select(InboxMessage.message_id)).scalars())
    assert stored == {m for m, _, _ in answers}

    # Recovery: the drain pushes the outbox's waiting jobs, the sweep puts back the rows whose job Redis lost.
    assert outbox.drain(clean.engine, rq_conn) == 20
    with db.session_scope(clean.engine) as session:
        assert (
            normalise.requeue_due(
                session, now=dt.datetime.now(dt.UTC).replace(tzinfo=None) + LATER, connection=rq_conn
            )
            == 30
        )  # every row is still received (twenty jobs wait in rq: running twice is harmless)
    outbox.drain(clean.engine, rq_conn)
    run_intake_burst(rq_conn)
    finished = FinishedJobRegistry(queue=Queue("intake", connection=rq_conn)).get_job_ids()
    with clean.engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(OutboxJob).where(OutboxJob.enqueued_at.is_(None))
            ).scalar_one()
            == 0
        )
    assert len(finished) >= 20
    assert_each_message_is_one_order(clean)
    rq_conn.close()
