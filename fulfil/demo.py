"""The simulated day: a generated belt's orders batched on a simulated clock, planned by workers, executed.

Steps, each timed: migrate the database; reach Redis; clear the previous demo belt; generate the belt; step a
simulated clock through the day in batch windows (orders join batches, batches close on their windows and
their ``plan_batch`` jobs go through the outbox to rq) while ``fulfil worker --burst`` subprocesses plan them;
execute the plan day by day (work orders started and completed, orders into production, parcels and orders
packed, stock leaving the shelves); then measure the day.

Everything moves in bulk: per step one transaction and a few set-wise statements, never a row at a time.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, String, Table, and_, bindparam, cast, exists, func, literal, select, update
from sqlalchemy.orm import Session

from fulfil import db, migrate, redis_conn
from fulfil import settings as _settings
from fulfil.dbcolumns import read_columns, update_columns
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    Belt,
    ExceptionItem,
    Order,
    OrderLine,
    Parcel,
    SiteKind,
    Stock,
    WorkOrder,
    WorkshopCapacity,
)
from fulfil.domain.states import (
    ORDER,
    PARCEL,
    WORK_ORDER,
    BatchState,
    OrderEvent,
    OrderState,
    ParcelEvent,
    ParcelState,
    WorkOrderEvent,
    WorkOrderState,
)
from fulfil.intake.stream import StreamReport
from fulfil.planning.load import BELT_UTC_OFFSET, READY_MINUTE

WINDOW = dt.timedelta(minutes=15)
POLL_SECONDS = 0.2
SERVER_START_SECONDS = 30.0
MAX_WORKER_FAILURES = 5  # worker processes that may exit with an error before the demo stops


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class DemoParams:
    orders: int = 20_000
    workshops: int = 200
    seed: int = 1
    day: dt.date | None = None  # None: the generator's default day
    workers: int = 2
    reset: bool = False  # allowed to clear a belt in a configured (non-embedded) database
    window: dt.timedelta = WINDOW
    worker_timeout: float = 900.0  # seconds the planning may take before the demo gives up


@dataclass
class DemoReport:
    orders: int = 0
    order_lines: int = 0
    batches: int = 0
    batches_failed: int = 0
    parcels: int = 0
    orders_packed: int = 0  # packed, or further on (shipped, delivered)
    orders_shipped: int = 0  # every parcel picked up by its courier
    orders_unfilled: int = 0  # back in the pool with an exception naming the reason
    orders_late: int = 0  # at least one line planned after its ship-by
    parcels_on_time: int = 0
    work_orders: int = 0
    work_orders_completed: int = 0
    goods_fen: int = 0
    overtime_fen: int = 0
    shipping_fen: int = 0
    used_minutes: float = 0.0
    regular_minutes_of_days_used: float = 0.0
    stream: StreamReport | None = None  # orders that came through the platforms' webhooks and pulls
    dispatch: list[Any] = field(default_factory=list)  # fulfil.dispatch.simulate.DispatchDay per day
    parcels_with_courier: int = 0
    waybills: dict[str, int] = field(default_factory=dict)  # by status
    pickups: dict[str, int] = field(default_factory=dict)  # by status
    parcels_in_pickups: int = 0
    parcels_picked_up: int = 0  # picked up or further on
    ship_confirmations: int = 0
    dispatch_exceptions: dict[str, int] = field(default_factory=dict)  # open, by kind
    parcels_unaccounted: int = 0  # packed, without courier, waybill or pickup and without an exception
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def on_time_share(self) -> float:
        return self.parcels_on_time / self.parcels if self.parcels else 0.0

    @property
    def cost_per_parcel_yuan(self) -> float:
        total = self.goods_fen + self.overtime_fen + self.shipping_fen
        return total / self.parcels / 100.0 if self.parcels else 0.0

    @property
    def utilisation(self) -> float:
        return (
            self.used_minutes / self.regular_minutes_of_days_used
            if self.regular_minutes_of_days_used
            else 0.0
        )


class Progress(Protocol):
    """What the demo reports progress to (the CLI's rich progress bars; tests pass a silent one)."""

    def start(self, step: str, total: int | None) -> None: ...

    def advance(
        self, step: str, completed: int, total: int | None = None, detail: str | None = None
    ) -> None: ...

    def finish(self, step: str) -> None: ...

    def note(self, message: str) -> None: ...


class SilentProgress:
    def start(self, step: str, total: int | None) -> None:
        pass

    def advance(self, step: str, completed: int, total: int | None = None, detail: str | None = None) -> None:
        pass

    def finish(self, step: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@contextmanager
def _timed(report: DemoReport, step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[step] = round(time.perf_counter() - t0, 2)


def run_demo(params: DemoParams, progress: Progress | None = None) -> DemoReport:
    """Run the simulated day on the configured database and Redis (embedded by default)."""
    if params.workers < 1:
        raise DemoError("--workers must be at least 1: the batches are planned by worker processes")
    progress = progress or SilentProgress()
    s = _settings.get()
    report = DemoReport()
    t_all = time.perf_counter()
    eng = db.engine(s.database_url)

    with _timed(report, "migrate"):
        migrate.upgrade(eng)
    with _timed(report, "redis"):
        conn = redis_conn.connect(s)
        try:
            conn.ping()
        except Exception as exc:
            where = "REDIS_URL" if s.redis_url else f"embedded Redis under {s.data_dir}"
            raise DemoError(f"{where}: cannot reach Redis ({type(exc).__name__}: {exc})") from exc
    with _timed(report, "clear"):
        _clear_previous(eng, conn, s, params, progress)
    with _timed(report, "generate"):
        _generate(eng, s, params, progress)
    with _timed(report, "stream"):
        _stream(eng, s, params, progress, report)
    _run_day(eng, s, params, progress, report)
    with _timed(report, "execute"):
        _execute(eng, s, conn, params, progress, report)
    with _timed(report, "measure"):
        _measure(eng, report)
    report.seconds["total"] = round(time.perf_counter() - t_all, 2)
    return report


# --- clearing --------------------------------------------------------------------------------------------


def _belt_rows(eng: Engine) -> list[tuple[str, int, dt.date]]:
    with eng.connect() as c:
        return [(n, seed, day) for n, seed, day in c.execute(select(Belt.name, Belt.seed, Belt.day))]


def _has_orders(eng: Engine) -> bool:
    with eng.connect() as c:
        return c.execute(select(Order.id).limit(1)).first() is not None


def _clear_previous(
    eng: Engine, conn: Any, s: _settings.Settings, params: DemoParams, progress: Progress
) -> None:
    from fulfil.belt.generate import clear_belt

    belts = _belt_rows(eng)
    if not belts and not _has_orders(eng):
        return
    described = ", ".join(f"{n!r} (seed {seed}, day {day})" for n, seed, day in belts) or "orders of no belt"
    if not s.embedded_database and not params.reset:
        raise DemoError(
            f"DATABASE_URL: the configured database already holds {described}; the demo clears what it finds "
            "before it generates. Run `fulfil demo --reset` to clear it, or point DATABASE_URL elsewhere."
        )
    progress.note(f"clearing the previous demo belt {described} from {_where(s)}")
    clear_belt(eng)
    _clear_jobs(conn, s)


def _where(s: _settings.Settings) -> str:
    if s.embedded_database:
        return f"the embedded database {s.data_dir / 'fulfil.db'}"
    return "the configured DATABASE_URL"


def _clear_jobs(conn: Any, s: _settings.Settings) -> None:
    """Forget the previous run's queued rq jobs: they name batches of the belt just cleared."""
    from rq import Queue

    from fulfil.jobs import tasks

    if s.embedded_redis:
        conn.flushdb()  # the embedded Redis belongs to this data directory alone
        return
    for name in tasks.QUEUES:
        Queue(name, connection=conn).empty()  # type: ignore[no-untyped-call]


# --- generating ------------------------------------------------------------------------------------------


def _generate(eng: Engine, s: _settings.Settings, params: DemoParams, progress: Progress) -> None:
    from fulfil.belt.generate import BeltParams, generate_belt
    from fulfil.pii import Sealer

    kwargs: dict[str, Any] = {"orders": params.orders, "workshops": params.workshops, "seed": params.seed}
    if params.day is not None:
        kwargs["day"] = params.day
    belt = BeltParams(**kwargs)
    progress.start("generate", None)
    generate_belt(eng, belt, Sealer(s.pii_key), progress=_generator_progress(progress))
    progress.finish("generate")


def _generator_progress(progress: Progress) -> Callable[[str, int, int], None]:
    def report(stage: str, done: int, total: int) -> None:
        progress.advance("generate", done, total, detail=stage)

    return report


# --- the live stream: orders through the platforms' webhooks and pulls ------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def api_server(log_dir: Path, timeout: float = SERVER_START_SECONDS) -> Iterator[str]:
    """``fulfil serve`` in a subprocess on a free loopback port, up and answering; yields its base URL."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_dir / "demo-api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        _fulfil_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise DemoError(f"the API server exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the API server did not answer within {timeout:.0f}s; see {log.name}")
            time.sleep(POLL_SECONDS)
        yield url
    finally:
        _stop(proc)
        log.close()


def _stream(
    eng: Engine, s: _settings.Settings, params: DemoParams, progress: Progress, report: DemoReport
) -> None:
    from fulfil.belt.generate import belt_today
    from fulfil.intake import stream
    from fulfil.pii import Sealer

    if params.day is not None and params.day != belt_today():
        report.notes.append(
            f"no live stream: it happens now, on today's belt, and the belt's day is {params.day}"
        )
        return
    progress.start("stream", None)
    with api_server(s.data_dir) as url:
        try:
            report.stream = stream.run(
                eng,
                redis_conn.connect(s),
                Sealer(s.pii_key),
                url,
                seed=params.seed,
                progress=lambda step, done, total: progress.advance(step, done, total),
            )
        except stream.StreamError as exc:
            raise DemoError(f"stream: {exc}") from None
    progress.finish("stream")


# --- the day: batching on a simulated clock, planning by workers -----------------------------------------


def _clock(eng: Engine, window: dt.timedelta) -> list[dt.datetime]:
    """The ticks of the day: from the first payment's window to one window past the last payment."""
    paid_at = func.coalesce(Order.paid_at, Order.created_at)
    with eng.connect() as c:
        first, last = c.execute(
            select(func.min(paid_at), func.max(paid_at)).where(Order.status == OrderState.PAID)
        ).one()
    if first is None:
        return []
    epoch = dt.datetime(1970, 1, 1)
    t = epoch + ((first - epoch) // window) * window + window
    ticks = []
    while t <= last + window:
        ticks.append(t)
        t += window
    return ticks


def _fulfil_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("fulfil")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from fulfil.cli import run; run()", *args]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a child process to stop; kill it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _worker_command() -> list[str]:
    return _fulfil_command("worker", "--burst")


class _Workers:
    """Up to ``n`` burst workers; a worker that ran out of jobs exits and is replaced while work remains."""

    def __init__(self, n: int, log_dir: Path) -> None:
        self.n = n
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.started = 0
        self.failures: list[str] = []

    def ensure(self) -> None:
        alive = []
        for proc, log in self.procs:
            code = proc.poll()
            if code is None:
                alive.append((proc, log))
                continue
            log.close()
            if code != 0:
                self.failures.append(f"worker pid {proc.pid} exited with {code}; see {log.name}")
        self.procs = alive
        while len(self.procs) < self.n:
            self.started += 1
            log = open(self.log_dir / f"demo-worker-{self.started}.log", "wb")  # noqa: SIM115 - kept open
            proc = subprocess.Popen(
                _worker_command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ.copy(),
            )
            self.procs.append((proc, log))

    def stop(self) -> None:
        for proc, log in self.procs:
            _stop(proc)
            log.close()
        self.procs = []


def _batch_counts(eng: Engine) -> dict[BatchState, int]:
    with eng.connect() as c:
        return {
            BatchState(status): n
            for status, n in c.execute(select(Batch.status, func.count()).group_by(Batch.status))
        }


def _run_day(
    eng: Engine, s: _settings.Settings, params: DemoParams, progress: Progress, report: DemoReport
) -> None:
    from fulfil import batching

    t0 = time.perf_counter()
    ticks = _clock(eng, params.window)
    progress.start("batch", len(ticks))
    for i, now in enumerate(ticks):
        with db.session_scope(eng) as session:
            batching.assign_orders(session, now, params.window)
            batching.close_due_batches(session, now)
        progress.advance("batch", i + 1)
    progress.finish("batch")
    report.seconds["batching"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    counts = _batch_counts(eng)
    total = sum(counts.values())
    workers = _Workers(params.workers, s.data_dir)
    progress.start("plan", total)
    deadline = time.monotonic() + params.worker_timeout
    try:
        while True:
            counts = _batch_counts(eng)
            done = counts.get(BatchState.PLANNED, 0) + counts.get(BatchState.FAILED, 0)
            progress.advance("plan", done, total)
            if counts.get(BatchState.CLOSED, 0) == 0 and counts.get(BatchState.OPEN, 0) == 0:
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"planning: {total - done} of {total} batches still unplanned after "
                    f"{params.worker_timeout:.0f}s; worker logs are in {s.data_dir}"
                )
            if len(workers.failures) >= MAX_WORKER_FAILURES:
                raise DemoError(
                    f"planning: {len(workers.failures)} worker processes failed; "
                    f"the last: {workers.failures[-1]}"
                )
            workers.ensure()
            time.sleep(POLL_SECONDS)
    finally:
        workers.stop()
        progress.finish("plan")
    report.seconds["planning"] = round(time.perf_counter() - t0, 2)
    report.notes.extend(workers.failures)
    report.batches_failed = counts.get(BatchState.FAILED, 0)


# --- execution -------------------------------------------------------------------------------------------


def _plan_days(eng: Engine) -> list[dt.date]:
    with eng.connect() as c:
        lo1, hi1 = c.execute(select(func.min(WorkOrder.day), func.max(WorkOrder.day))).one()
        lo2, hi2 = c.execute(select(func.min(Parcel.ready_on), func.max(Parcel.ready_on))).one()
    bounds = [d for d in (lo1, hi1, lo2, hi2) if d is not None]
    if not bounds:
        return []
    first, last = min(bounds), max(bounds)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _execute(
    eng: Engine, s: _settings.Settings, conn: Any, params: DemoParams, progress: Progress, report: DemoReport
) -> None:
    """Each plan day on the floor, then its dispatch with the fake couriers; one more day of dispatch after
    the last takes what was packed after the last cut-offs."""
    from fulfil.dispatch.simulate import DemoCouriers
    from fulfil.pii import Sealer

    days = _plan_days(eng)
    progress.start("execute", len(days) + 1)
    with DemoCouriers(eng, Sealer(s.pii_key), conn, seed=params.seed) as couriers:
        for i, day in enumerate(days):
            with db.session_scope(eng) as session:
                execute_day(session, day)
            report.dispatch.append(couriers.run_day(day))
            progress.advance("execute", i + 1)
        if days:
            report.dispatch.append(couriers.run_day(days[-1] + dt.timedelta(days=1)))
        progress.advance("execute", len(days) + 1)
    progress.finish("execute")


def execute_day(session: Session, day: dt.date) -> None:
    """Run one plan day on the floor, in bulk: the day's work orders are started and completed (their orders
    go into production), the stock picked that day leaves the shelves, parcels ready by then are packed, and
    orders whose every parcel is packed are packed."""
    todays = (WorkOrder.day == day) & (WorkOrder.status == WorkOrderState.PLANNED)
    WORK_ORDER.fire_where(session, WorkOrder, todays, WorkOrderEvent.START)
    in_todays_work = (
        select(OrderLine.order_id)
        .join(AllocationDecision, AllocationDecision.order_line_id == OrderLine.id)
        .where(AllocationDecision.work_order_id.in_(select(WorkOrder.id).where(WorkOrder.day == day)))
    )
    ORDER.fire_where(
        session,
        Order,
        Order.id.in_(in_todays_work) & (Order.status == OrderState.ALLOCATED),
        OrderEvent.START_PRODUCTION,
    )
    running = (WorkOrder.day == day) & (WorkOrder.status == WorkOrderState.STARTED)
    session.execute(
        update(WorkOrder)
        .where(running)
        .values(quantity_done=WorkOrder.quantity)
        .execution_options(synchronize_session=False)
    )
    WORK_ORDER.fire_where(session, WorkOrder, running, WorkOrderEvent.COMPLETE)

    picked = session.execute(
        select(
            AllocationDecision.warehouse_id,
            AllocationDecision.stock_owner_id,
            OrderLine.sku_id,
            func.sum(AllocationDecision.quantity),
        )
        .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            AllocationDecision.source == SiteKind.WAREHOUSE,
            AllocationDecision.day == day,
            Order.status.in_([OrderState.ALLOCATED, OrderState.IN_PRODUCTION]),
        )
        .group_by(AllocationDecision.warehouse_id, AllocationDecision.stock_owner_id, OrderLine.sku_id)
    ).all()
    if picked:
        stock = cast_table(Stock.__table__)
        session.execute(
            update(stock)
            .where(
                stock.c.warehouse_id == bindparam("w"),
                stock.c.owner_id == bindparam("o"),
                stock.c.sku_id == bindparam("s"),
            )
            .values(on_hand=stock.c.on_hand - bindparam("q"), reserved=stock.c.reserved - bindparam("q")),
            [{"w": w, "o": o, "s": k, "q": int(q)} for w, o, k, q in picked],
        )

    packing = (Parcel.ready_on <= day) & (Parcel.status == ParcelState.PLANNED)
    pid, packed_at = _packing_times(session, day, packing)
    PARCEL.fire_where(session, Parcel, packing, ParcelEvent.PACK)
    update_columns(session, cast_table(Parcel.__table__), pid, {"packed_at": packed_at})
    has_parcel = exists().where(Parcel.order_id == Order.id)
    waiting = exists().where(Parcel.order_id == Order.id, Parcel.status == ParcelState.PLANNED)
    ORDER.fire_where(
        session,
        Order,
        Order.status.in_([OrderState.ALLOCATED, OrderState.IN_PRODUCTION]) & has_parcel & ~waiting,
        OrderEvent.PACK,
    )


WAREHOUSE_WAVES = (10 * 60, 14 * 60, 17 * 60)  # local minutes at which a shared warehouse's picks are packed
WORKDAY = (8 * 60, READY_MINUTE)  # a workshop's day, local minutes: its lots are packed as they finish


def _packing_times(
    session: Session, day: dt.date, packing: Any
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.datetime64]]:
    """When each parcel about to be packed on ``day`` is ready for its courier (naive UTC).

    A workshop packs when its day's lots are done: the share of its regular minutes the day's work orders
    take, along the working day (a full day finishes at the plan's ready time). A shared warehouse packs
    in waves, the first after an order is two hours paid. A parcel due on an earlier day is packed first
    thing."""
    pid, workshop, ready_on, paid_at = read_columns(
        session,
        select(Parcel.id, Parcel.workshop_id, Parcel.ready_on, Order.paid_at)
        .join(Order, Order.id == Parcel.order_id)
        .where(packing)
        .order_by(Parcel.id),
        [np.int64, np.int64, "datetime64[D]", "datetime64[us]"],
        nulls="mask",
    )
    n = pid.shape[0]
    minute = np.full(n, WORKDAY[0], np.int64)
    midnight = np.datetime64(dt.datetime.combine(day, dt.time()) - BELT_UTC_OFFSET, "us")
    today = np.ma.getdata(ready_on) == np.datetime64(day, "D")
    at_workshop = ~np.ma.getmaskarray(workshop)
    if n and (today & at_workshop).any():
        used = {
            k: v
            for k, v in session.execute(
                select(WorkOrder.workshop_id, func.sum(WorkOrder.regular_minutes))
                .where(WorkOrder.day == day)
                .group_by(WorkOrder.workshop_id)
            )
        }
        regular = {
            k: v
            for k, v in session.execute(
                select(WorkshopCapacity.workshop_id, func.sum(WorkshopCapacity.regular_minutes))
                .where(WorkshopCapacity.day == day)
                .group_by(WorkshopCapacity.workshop_id)
            )
        }
        ids = np.ma.getdata(workshop)
        share = np.array(
            [
                min(float(used.get(w, 0.0)) / max(float(regular.get(w, 0) or 0), 1.0), 1.0)
                for w in ids.tolist()
            ]
        )
        finish = WORKDAY[0] + np.ceil(share * (WORKDAY[1] - WORKDAY[0]) / 15.0) * 15
        minute = np.where(today & at_workshop, finish.astype(np.int64), minute)
    at_warehouse = today & ~at_workshop
    if at_warehouse.any():
        paid = np.where(np.ma.getmaskarray(paid_at), midnight, np.ma.getdata(paid_at))
        since = np.maximum((paid - midnight) // np.timedelta64(1, "m"), 0) + 120
        waves = np.asarray(WAREHOUSE_WAVES)
        wave = waves[np.minimum(np.searchsorted(waves, since), waves.shape[0] - 1)]
        minute = np.where(at_warehouse, wave, minute)
    return pid.astype(np.int64), midnight + minute.astype("timedelta64[m]")


def cast_table(table: Any) -> Table:
    assert isinstance(table, Table)
    return table


# --- measuring -------------------------------------------------------------------------------------------


def _measure(eng: Engine, report: DemoReport) -> None:
    with eng.connect() as c:

        def count(*what: Any) -> int:
            return int(c.execute(select(func.count()).select_from(*what[:1]).where(*what[1:])).scalar_one())

        report.orders = count(Order)
        report.order_lines = count(OrderLine)
        report.batches = count(Batch)
        report.parcels = count(Parcel)
        report.orders_packed = count(
            Order, Order.status.in_([OrderState.PACKED, OrderState.SHIPPED, OrderState.DELIVERED])
        )
        report.orders_shipped = count(Order, Order.status.in_([OrderState.SHIPPED, OrderState.DELIVERED]))
        report.work_orders = count(WorkOrder)
        report.work_orders_completed = count(WorkOrder, WorkOrder.status == WorkOrderState.COMPLETED)
        report.orders_unfilled = count(
            Order,
            Order.status == OrderState.PAID,
            exists().where(
                ExceptionItem.kind == "unfillable",
                ExceptionItem.status == "open",
                ExceptionItem.subject == literal("order ", String) + cast(Order.id, String),
            ),
        )
        report.orders_late = int(
            c.execute(
                select(func.count(func.distinct(OrderLine.order_id)))
                .join(AllocationDecision, AllocationDecision.order_line_id == OrderLine.id)
                .where(AllocationDecision.late)
            ).scalar_one()
        )
        goods, overtime = c.execute(
            select(
                func.coalesce(func.sum(AllocationDecision.goods_fen), 0),
                func.coalesce(func.sum(AllocationDecision.overtime_fen), 0),
            )
        ).one()
        report.goods_fen, report.overtime_fen = int(goods), int(overtime)
        report.shipping_fen = int(
            c.execute(select(func.coalesce(func.sum(Parcel.shipping_fen), 0))).scalar_one() or 0
        )

        rows = c.execute(
            select(Parcel.ready_on, Order.ship_by).join(Order, Order.id == Parcel.order_id)
        ).all()
        if rows:
            ready_on = np.array([r[0] for r in rows], dtype="datetime64[D]")
            ship_by = np.array([r[1] for r in rows], dtype="datetime64[m]")
            ready_at = ready_on.astype("datetime64[m]") + np.timedelta64(READY_MINUTE, "m")
            ready_at = ready_at - np.timedelta64(int(BELT_UTC_OFFSET.total_seconds() // 60), "m")
            report.parcels_on_time = int((ready_at <= ship_by).sum())

        used = (
            select(
                WorkOrder.workshop_id,
                WorkOrder.process_family_id,
                WorkOrder.day,
                func.sum(WorkOrder.regular_minutes + WorkOrder.overtime_minutes).label("minutes"),
            )
            .group_by(WorkOrder.workshop_id, WorkOrder.process_family_id, WorkOrder.day)
            .subquery()
        )
        minutes, regular = c.execute(
            select(
                func.coalesce(func.sum(used.c.minutes), 0.0),
                func.coalesce(func.sum(WorkshopCapacity.regular_minutes), 0.0),
            ).select_from(
                used.join(
                    WorkshopCapacity,
                    and_(
                        WorkshopCapacity.workshop_id == used.c.workshop_id,
                        WorkshopCapacity.process_family_id == used.c.process_family_id,
                        WorkshopCapacity.day == used.c.day,
                    ),
                )
            )
        ).one()
        report.used_minutes, report.regular_minutes_of_days_used = float(minutes), float(regular)
    _measure_dispatch(eng, report)


DISPATCH_EXCEPTIONS = (
    "no_courier",
    "waybill_failed",
    "pickup_failed",
    "tracking_exception",
    "unreadable_tracking",
)


def _measure_dispatch(eng: Engine, report: DemoReport) -> None:
    from fulfil.dispatch.simulate import counts
    from fulfil.domain.models import PickupParcel, ShipConfirmation, Waybill

    tallies = counts(eng)
    report.waybills, report.pickups = tallies["waybills"], tallies["pickups"]
    on_the_way = [ParcelState.PICKED_UP, ParcelState.IN_TRANSIT, ParcelState.DELIVERED]
    with eng.connect() as c:

        def count(*what: Any) -> int:
            return int(c.execute(select(func.count()).select_from(*what[:1]).where(*what[1:])).scalar_one())

        report.parcels_with_courier = count(Parcel, Parcel.courier_point_id.is_not(None))
        report.parcels_in_pickups = count(PickupParcel)
        report.parcels_picked_up = count(Parcel, Parcel.status.in_(on_the_way))
        report.ship_confirmations = count(ShipConfirmation)
        report.dispatch_exceptions = {
            str(kind): int(n)
            for kind, n in c.execute(
                select(ExceptionItem.kind, func.count())
                .where(ExceptionItem.status == "open", ExceptionItem.kind.in_(DISPATCH_EXCEPTIONS))
                .group_by(ExceptionItem.kind)
            )
        }
        flagged = exists().where(
            ExceptionItem.status == "open",
            ExceptionItem.kind.in_(DISPATCH_EXCEPTIONS),
            ExceptionItem.subject == literal("parcel ", String) + cast(Parcel.id, String),
        )
        in_pickup = exists().where(PickupParcel.parcel_id == Parcel.id)
        issued = exists().where(Waybill.parcel_id == Parcel.id, Waybill.status == "issued")
        report.parcels_unaccounted = count(
            Parcel,
            Parcel.status != ParcelState.CANCELLED,
            Parcel.status != ParcelState.PLANNED,
            ~flagged,
            ~(Parcel.courier_point_id.is_not(None) & issued & in_pickup),
        )
