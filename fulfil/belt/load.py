"""Writing a generated belt to the database in bulk, in one transaction.

PostgreSQL: master data by text ``COPY`` (psycopg's ``write_row``), orders and lines by binary ``COPY`` whose
rows are assembled column-wise (a numpy record array for the fixed-width columns, shared byte strings for the
rest), written by a second thread so that generation and the server's ingest overlap. For a large day the
orders' secondary indexes and foreign keys are dropped and rebuilt inside the same transaction (a sorted
index build and one validating join are far cheaper than millions of per-row checks); the definitions are
read from the catalog, so what is rebuilt is exactly what was there.

SQLite: ``executemany`` on the raw connection inside ``BEGIN IMMEDIATE``, values converted by SQLAlchemy's
own bind processors so that the ORM reads them back unchanged.

Ids: every table's ids are taken from its own sequence (PostgreSQL) or above its largest id (SQLite) while
the tables are locked against other writers, and the sequences are left at the last id written, so rows
the ORM inserts later never collide.
"""

from __future__ import annotations

import datetime as dt
import queue
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from fulfil.belt import geo
from fulfil.belt.master import PLATFORMS
from fulfil.belt.orders import CITIES, OrderChunk
from fulfil.domain.models import Base
from fulfil.domain.states import OrderState

Progress = Callable[[str, int, int], None]
IntArray = npt.NDArray[np.int64]

_PG_EPOCH = dt.datetime(2000, 1, 1)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)

# Orders in binary COPY: the fixed-width columns first (one record array), then the variable ones.
ORDER_COLUMNS = (
    "id", "shop_id", "merchant_id", "status", "created_at", "paid_at", "ship_by", "presale", "province",
    "platform_order_id", "batch_id", "platform", "city", "receiver_sealed",
)  # fmt: skip
_ORDER_FIXED = np.dtype(
    [
        ("nfields", ">i2"),
        ("l_id", ">i4"), ("id", ">i8"),
        ("l_shop", ">i4"), ("shop", ">i8"),
        ("l_merchant", ">i4"), ("merchant", ">i8"),
        ("l_status", ">i4"), ("status", "S4"),
        ("l_created", ">i4"), ("created", ">i8"),
        ("l_paid", ">i4"), ("paid", ">i8"),
        ("l_ship_by", ">i4"), ("ship_by", ">i8"),
        ("l_presale", ">i4"), ("presale", "u1"),
        ("l_province", ">i4"), ("province", "S2"),
        ("l_poid", ">i4"), ("poid", "S19"),
        ("l_batch", ">i4"),  # -1: NULL
    ]
)  # fmt: skip
LINE_COLUMNS = ("id", "order_id", "sku_id", "quantity")
_LINE_RECORD = np.dtype(
    [
        ("nfields", ">i2"),
        ("l_id", ">i4"), ("id", ">i8"),
        ("l_order", ">i4"), ("order", ">i8"),
        ("l_sku", ">i4"), ("sku", ">i8"),
        ("l_qty", ">i4"), ("qty", ">i4"),
    ]
)  # fmt: skip

_STATUS = OrderState.PAID.value
assert len(_STATUS.encode()) == 4, "the binary order record assumes a 4-byte status"


def _order_template() -> np.void:
    """The fixed part of an order's binary COPY row with its constant fields (counts, lengths) filled in."""
    t = np.zeros(1, dtype=_ORDER_FIXED)
    t["nfields"] = len(ORDER_COLUMNS)
    for name in _ORDER_FIXED.names or ():
        if name.startswith("l_") and name != "l_batch":
            t[name] = _ORDER_FIXED[name[2:]].itemsize  # each length field precedes its value
    t["l_batch"] = -1  # batch_id is NULL
    t["status"] = _STATUS.encode()
    template: np.void = t[0]
    return template


def _length_prefixed(values: Sequence[str]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = [struct.pack(">i", len(v.encode())) + v.encode() for v in values]
    return out


@dataclass
class OrderRows:
    """A chunk of orders with everything resolved to what the database stores."""

    chunk: OrderChunk
    day: dt.date
    order_ids: IntArray
    line_ids: IntArray
    shop_ids: IntArray
    merchant_ids: IntArray
    sku_ids: IntArray  # per line
    platform: IntArray  # index into PLATFORMS, per order
    platform_order_ids: npt.NDArray[np.bytes_]
    sealed: list[bytes]


class LoadError(RuntimeError):
    """The database cannot take the belt (missing schema, data already there)."""


class Loader:
    """One transaction on a raw DBAPI connection; subclasses speak PostgreSQL or SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw = engine.raw_connection()
        self.progress: Progress | None = None
        self.orders_total = 0
        self._next_id: dict[str, int] = {}
        self._first_id: dict[str, int] = {}

    # interface ------------------------------------------------------------------------------------------
    def begin(self, tables: Sequence[str]) -> None:
        raise NotImplementedError

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def occupied(self, tables: Sequence[str]) -> list[str]:
        """Those of ``tables`` that hold any row."""
        raise NotImplementedError

    def belts(self) -> list[tuple[Any, ...]]:
        """(name, seed, day, created_at) of the belts already in the database."""
        raise NotImplementedError

    def take_ids(self, table: str, n: int) -> int:
        """The first of ``n`` consecutive new ids for ``table``."""
        if table not in self._next_id:
            self._next_id[table] = self._first_id[table] = self._first_free_id(table)
        first = self._next_id[table]
        self._next_id[table] = first + n
        return first

    def _first_free_id(self, table: str) -> int:
        raise NotImplementedError

    def write_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def begin_orders(self, defer_indexes: bool) -> None:
        pass

    def write_orders(self, rows: OrderRows) -> None:
        raise NotImplementedError

    def end_orders(self) -> None:
        pass

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._raw.close()

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


def local_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day) - dt.timedelta(hours=geo.UTC_OFFSET_HOURS)


# --- PostgreSQL -------------------------------------------------------------------------------------------


class PgLoader(Loader):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        import psycopg

        conn = self._raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        self.conn: psycopg.Connection[Any] = conn
        self._queue: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue(maxsize=2)
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._restore: list[str] = []
        self._orders_done = 0
        self._order_template = _order_template()
        self._platform_items = _length_prefixed([p.value for p in PLATFORMS])
        self._city_items = _length_prefixed(CITIES)
        self._province_codes = np.array([p.code.encode() for p in geo.PROVINCES], dtype="S2")
        # The 4-byte length before each sealed receiver, shared between rows of the same length.
        self._len_items = np.empty(4096, dtype=object)
        self._len_items[:] = [struct.pack(">i", i) for i in range(len(self._len_items))]

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if self._exec("SELECT to_regclass(%s)", (t,))[0][0] is None]

    def begin(self, tables: Sequence[str]) -> None:
        # Two generators at once: the second waits here, then finds the first one's belt.
        self._exec("LOCK TABLE belts IN SHARE ROW EXCLUSIVE MODE")
        # Others may read while the belt is written, but not insert rows that would take ids from under us.
        self._exec(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")

    def occupied(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if self._exec(f"SELECT EXISTS (SELECT 1 FROM {t})")[0][0]]

    def belts(self) -> list[tuple[Any, ...]]:
        return self._exec("SELECT name, seed, day, created_at FROM belts ORDER BY id")

    def _first_free_id(self, table: str) -> int:
        return int(self._exec("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", (table,))[0][0])

    def _finish_ids(self) -> None:
        for table, nxt in self._next_id.items():
            # nextval already handed out the first id; leave the sequence at the last id written.
            if nxt > self._first_id[table]:
                self._exec("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, nxt - 1))

    def write_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        from psycopg.types.json import Json

        if table == "belts":  # the one JSON column the generator writes
            rows = [tuple(Json(v) if isinstance(v, dict) else v for v in row) for row in rows]
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN".encode()) as cp,
        ):
            for row in rows:
                cp.write_row(row)

    # orders ---------------------------------------------------------------------------------------------
    def begin_orders(self, defer_indexes: bool) -> None:
        if defer_indexes:
            self._defer(("orders", "order_lines"))
        self._writer = threading.Thread(target=self._write_loop, name="belt-copy", daemon=True)
        self._writer.start()

    def _defer(self, tables: Sequence[str]) -> None:
        drops: list[str] = []
        for t in tables:
            for name, definition, kind in self._exec(
                "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                "WHERE conrelid = to_regclass(%s) AND contype IN ('f', 'u') ORDER BY contype DESC, conname",
                (t,),
            ):
                drops.append(f'ALTER TABLE {t} DROP CONSTRAINT "{name}"')
                # Unique constraints come back before foreign keys (contype 'u' sorts after 'f').
                stmt = f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {definition}'
                if kind == "u":
                    self._restore.insert(0, stmt)
                else:
                    self._restore.append(stmt)
            for name, definition in self._exec(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = to_regclass(%s) AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (t,),
            ):
                drops.append(f"DROP INDEX {name}")
                self._restore.insert(0, definition)
        for stmt in drops:
            self._exec(stmt)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._writer_error is not None:
                continue  # drain so the producer never blocks on a dead writer
            sql, payload, n_orders = item
            try:
                with self.conn.cursor() as cur, cur.copy(sql.encode()) as cp:
                    cp.write(payload)
                if n_orders:
                    self._orders_done += n_orders
                    self._report("orders", self._orders_done, self.orders_total)
            except BaseException as exc:  # handed to the producer thread, which raises it
                self._writer_error = exc

    def _put(self, item: tuple[str, bytes, int] | None) -> None:
        while True:
            if self._writer_error is not None and item is not None:
                raise self._writer_error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write_orders(self, rows: OrderRows) -> None:
        chunk, n = rows.chunk, rows.chunk.n
        base = int((local_midnight_utc(rows.day) - _PG_EPOCH).total_seconds()) * 1_000_000
        rec = np.empty(n, dtype=_ORDER_FIXED)
        rec[:] = self._order_template
        rec["id"] = rows.order_ids
        rec["shop"] = rows.shop_ids
        rec["merchant"] = rows.merchant_ids
        rec["created"] = chunk.created_us + base
        rec["paid"] = chunk.paid_us + base
        rec["ship_by"] = chunk.ship_by_us + base
        rec["presale"] = chunk.presale
        rec["province"] = self._province_codes[chunk.province]
        rec["poid"] = rows.platform_order_ids
        lens = np.fromiter(map(len, rows.sealed), dtype=np.int64, count=n)
        if n and lens.max() >= len(self._len_items):
            raise LoadError(f"a sealed receiver of {lens.max()} bytes is longer than the loader allows")
        parts = np.empty((n, 5), dtype=object)
        parts[:, 0] = rec.view(f"V{_ORDER_FIXED.itemsize}").tolist()
        parts[:, 1] = self._platform_items[rows.platform]
        parts[:, 2] = self._city_items[chunk.city]
        parts[:, 3] = self._len_items[lens]
        parts[:, 4] = rows.sealed
        payload = b"".join((_COPY_HEADER, *parts.ravel().tolist(), _COPY_TRAILER))
        self._put((f"COPY orders ({', '.join(ORDER_COLUMNS)}) FROM STDIN (FORMAT BINARY)", payload, 0))

        lines = np.empty(len(rows.line_ids), dtype=_LINE_RECORD)
        lines["nfields"] = len(LINE_COLUMNS)
        for name in ("id", "order", "sku", "qty"):
            lines["l_" + name] = _LINE_RECORD[name].itemsize
        lines["id"] = rows.line_ids
        lines["order"] = rows.order_ids[chunk.line_order]
        lines["sku"] = rows.sku_ids
        lines["qty"] = chunk.line_qty
        payload = _COPY_HEADER + lines.tobytes() + _COPY_TRAILER
        self._put((f"COPY order_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN (FORMAT BINARY)", payload, n))

    def end_orders(self) -> None:
        if self._writer is not None:
            self._put(None)
            self._writer.join()
            self._writer = None
        if self._writer_error is not None:
            raise self._writer_error
        if self._restore:
            # Server memory for the sorts; the index builds may also use parallel workers.
            self._exec("SET LOCAL maintenance_work_mem = '1GB'")
            for i, stmt in enumerate(self._restore):
                self._report("indexes", i, len(self._restore))
                self._exec(stmt)
            self._report("indexes", len(self._restore), len(self._restore))
            self._restore = []
        self._exec("ANALYZE orders, order_lines")

    def commit(self) -> None:
        self._finish_ids()
        self.conn.commit()

    def rollback(self) -> None:
        if self._writer is not None:
            self._writer_error = self._writer_error or RuntimeError("rolled back")
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self.conn.rollback()


# --- SQLite ----------------------------------------------------------------------------------------------


class SqliteLoader(Loader):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.conn: Any = self._raw.driver_connection
        self._orders_done = 0

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return [t for t in tables if t not in have]

    def begin(self, tables: Sequence[str]) -> None:
        # The write lock up front: nobody else inserts (and takes ids) until we commit.
        self.conn.execute("BEGIN IMMEDIATE")

    def occupied(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]

    def belts(self) -> list[tuple[Any, ...]]:
        return list(self.conn.execute("SELECT name, seed, day, created_at FROM belts ORDER BY id"))

    def _first_free_id(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])

    def _processors(self, table: str, columns: Sequence[str]) -> list[Callable[[Any], Any] | None]:
        dialect = self.engine.dialect
        t = Base.metadata.tables[table]
        return [t.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]

    def write_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        procs = self._processors(table, columns)
        if any(procs):
            rows = (tuple(v if p is None else p(v) for p, v in zip(procs, row, strict=True)) for row in rows)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.conn.executemany(sql, rows)

    def write_orders(self, rows: OrderRows) -> None:
        chunk, n = rows.chunk, rows.chunk.n
        base = np.datetime64(local_midnight_utc(rows.day), "us")

        def stamps(us: npt.NDArray[np.int64]) -> list[dt.datetime]:
            return (base + us.astype("timedelta64[us]")).tolist()  # type: ignore[no-any-return]

        codes = [p.code for p in geo.PROVINCES]
        plats = [p.value for p in PLATFORMS]
        values = zip(
            rows.order_ids.tolist(),
            [plats[p] for p in rows.platform.tolist()],
            rows.shop_ids.tolist(),
            [p.decode() for p in rows.platform_order_ids.tolist()],
            rows.merchant_ids.tolist(),
            [_STATUS] * n,
            stamps(chunk.created_us),
            stamps(chunk.paid_us),
            stamps(chunk.ship_by_us),
            chunk.presale.tolist(),
            [codes[p] for p in chunk.province.tolist()],
            [CITIES[c] for c in chunk.city.tolist()],
            rows.sealed,
            [None] * n,
            strict=True,
        )
        self.write_rows("orders", ORDER_SQLITE_COLUMNS, values)
        self.write_rows(
            "order_lines",
            LINE_COLUMNS,
            zip(
                rows.line_ids.tolist(),
                rows.order_ids[chunk.line_order].tolist(),
                rows.sku_ids.tolist(),
                chunk.line_qty.tolist(),
                strict=True,
            ),
        )
        self._orders_done += n
        self._report("orders", self._orders_done, self.orders_total)

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


ORDER_SQLITE_COLUMNS = (
    "id", "platform", "shop_id", "platform_order_id", "merchant_id", "status", "created_at", "paid_at",
    "ship_by", "presale", "province", "city", "receiver_sealed", "batch_id",
)  # fmt: skip


def loader_for(engine: Engine) -> Loader:
    if engine.dialect.name == "postgresql":
        return PgLoader(engine)
    if engine.dialect.name == "sqlite":
        return SqliteLoader(engine)
    raise LoadError(f"database {engine.dialect.name!r} is not supported; use PostgreSQL or SQLite")
