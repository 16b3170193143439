"""Generate a Changshu-like belt into the database: master data and a day of orders, deterministic by seed.

The plain data (everything except ids and the ciphertext of the sealed receivers) depends only on the
parameters, the chunk size included: orders are drawn minute by minute from generators seeded by
(seed, minute). Receivers are sealed with fresh random nonces, because a nonce must never repeat for a key
— across runs too.

All of it is written in one transaction: a failure or an interrupt leaves nothing behind, and a database
that already holds a belt (or any of the tables the generator fills) is refused with a message that says how
to clear it (:func:`clear_belt`, ``fulfil generate --reset``).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, inspect, text

from fulfil.belt import geo
from fulfil.belt.load import Loader, LoadError, OrderRows, Progress, loader_for
from fulfil.belt.master import TableData, generate_master
from fulfil.belt.orders import OrderPlan, receiver_plaintexts
from fulfil.domain.models import Base
from fulfil.pii import Sealer

# Tables the generator fills, parents first.
GENERATED_TABLES = (
    "process_families", "merchants", "platform_shops", "styles", "skus", "platform_sku_mappings", "workshops",
    "workshop_capacity", "qualifications", "shared_warehouses", "stock", "couriers", "courier_points",
    "courier_prices", "orders", "order_lines",
)  # fmt: skip

# From this many orders on, PostgreSQL rebuilds the orders' indexes and foreign keys after the load instead
# of maintaining them row by row.
DEFER_INDEXES_FROM = 200_000

_NONCE_BYTES = 12


class BeltError(RuntimeError):
    """The belt cannot be generated here; the message says why and what to do."""


def belt_today() -> dt.date:
    """Today in the belt's local time (China Standard Time)."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=geo.UTC_OFFSET_HOURS)).date()


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


@dataclass(frozen=True)
class BeltParams:
    """What to generate. The defaults are the demo's belt (20,000 orders, 200 workshops).

    :meth:`scaled` sizes the rest of the belt from the number of orders: workshops = orders/100 (20–5,000),
    shared warehouses = orders/2,000 (3–60), SKUs = orders/10 (200–40,000), merchants = orders/400 (10–500);
    at 20,000 orders that gives exactly the defaults, at 12 million 5,000 workshops, 60 warehouses,
    40,000 SKUs and 500 merchants. ``chunk`` is the number of orders generated and written at a time; it
    bounds memory and does not change the data.
    """

    orders: int = 20_000
    workshops: int = 200
    warehouses: int = 10
    skus: int = 2_000
    merchants: int = 50
    seed: int = 1
    day: dt.date = field(default_factory=belt_today)
    name: str = "changshu"
    chunk: int = 100_000

    @classmethod
    def scaled(cls, orders: int, **overrides: Any) -> BeltParams:
        """Parameters for ``orders`` a day with the rest of the belt sized to match; ``overrides`` win."""
        sized: dict[str, Any] = {
            "orders": orders,
            "workshops": _clamp(orders // 100, 20, 5_000),
            "warehouses": _clamp(orders // 2_000, 3, 60),
            "skus": _clamp(orders // 10, 200, 40_000),
            "merchants": _clamp(orders // 400, 10, 500),
        }
        sized.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**sized)

    def validate(self) -> None:
        for name in ("orders", "workshops", "warehouses", "skus", "merchants", "chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BeltParams.{name} must be a positive whole number, got {value!r}")
        if self.skus < self.merchants:
            raise ValueError(
                f"BeltParams.skus ({self.skus}) must be at least BeltParams.merchants ({self.merchants}): "
                "every merchant sells at least one SKU"
            )
        if not self.name or len(self.name) > 64:
            raise ValueError("BeltParams.name must be 1 to 64 characters")
        if not isinstance(self.day, dt.date):
            raise ValueError(f"BeltParams.day must be a date, got {self.day!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        return d


@dataclass(frozen=True)
class BeltSummary:
    belt_id: int
    name: str
    seed: int
    day: dt.date
    database: str
    process_families: int
    merchants: int
    platform_shops: int
    platform_sku_mappings: int
    styles: int
    skus: int
    workshops: int
    workshop_capacity: int
    qualifications: int
    shared_warehouses: int
    stock: int
    couriers: int
    courier_points: int
    courier_prices: int
    orders: int
    order_lines: int
    units: int
    presale_orders: int
    seconds: float

    def counts(self) -> dict[str, int]:
        """Rows written per table (and units, pre-sale orders)."""
        skip = {"belt_id", "name", "seed", "day", "database", "seconds"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def generate_belt(
    engine: Engine, params: BeltParams, sealer: Sealer, progress: Progress | None = None
) -> BeltSummary:
    """Generate ``params``' belt into ``engine``'s database in one transaction.

    ``progress(stage, done, total)`` is called as work completes; stages are ``"master data"``,
    ``"orders"`` and, for large days on PostgreSQL, ``"indexes"``. Raises :class:`BeltError` when the
    schema is missing or the database already holds a belt or other rows in the generated tables.
    """
    params.validate()
    started = time.perf_counter()
    try:
        loader = loader_for(engine)
    except LoadError as exc:
        raise BeltError(str(exc)) from None
    loader.progress = progress
    try:
        missing = loader.missing_tables(("belts", *GENERATED_TABLES))
        if missing:
            raise BeltError(
                f"the database schema is not migrated (missing tables: {', '.join(missing)}); "
                "run `fulfil migrate` first"
            )
        loader.begin(("belts", *GENERATED_TABLES))
        _refuse_if_occupied(loader)
        summary = _generate(loader, params, sealer, progress, started)
        loader.commit()
    except BaseException:
        loader.rollback()
        raise
    finally:
        loader.close()
    return summary


def _refuse_if_occupied(loader: Loader) -> None:
    belts = loader.belts()
    if belts:
        name, seed, day, created = belts[0]
        raise BeltError(
            f"this database already holds belt {name!r} (seed {seed}, day {day}, generated {created}); "
            "clear it first with `fulfil generate --reset` (or fulfil.belt.generate.clear_belt), "
            "which deletes all rows of all tables, or point DATABASE_URL at another database"
        )
    occupied = loader.occupied(GENERATED_TABLES)
    if occupied:
        raise BeltError(
            f"this database already holds rows the generator would write ({', '.join(occupied)}) "
            "although no belt was generated here; clear them with `fulfil generate --reset` "
            "(deletes all rows of all tables) or use another database"
        )


def _write_table(loader: Loader, table: TableData, first_ids: dict[str, int]) -> None:
    n = len(table)
    columns: list[str] = []
    values: list[list[Any]] = []
    if table.with_id:
        first_ids[table.name] = loader.take_ids(table.name, n)
        columns.append("id")
        values.append(list(range(first_ids[table.name], first_ids[table.name] + n)))
    for name, col in table.columns.items():
        if name in table.refs:
            col = np.asarray(col, dtype=np.int64) + first_ids[table.refs[name]]
        columns.append(name)
        values.append(col.tolist() if isinstance(col, np.ndarray) else list(col))
    loader.write_rows(table.name, columns, zip(*values, strict=True))


def _seal(sealer: Sealer, plains: list[bytes]) -> list[bytes]:
    # One system call for the chunk's nonces; each one is fresh randomness, never derived from the seed.
    pool = os.urandom(_NONCE_BYTES * len(plains))
    nonces = [pool[i : i + _NONCE_BYTES] for i in range(0, len(pool), _NONCE_BYTES)]
    return list(map(sealer.seal_bytes, plains, nonces))


def _generate(
    loader: Loader, params: BeltParams, sealer: Sealer, progress: Progress | None, started: float
) -> BeltSummary:
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    master = generate_master(
        seed=params.seed,
        day=params.day,
        orders=params.orders,
        merchants=params.merchants,
        skus=params.skus,
        workshops=params.workshops,
        warehouses=params.warehouses,
    )
    belt_id = loader.take_ids("belts", 1)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    loader.write_rows(
        "belts",
        ("id", "name", "seed", "day", "parameters", "created_at"),
        [(belt_id, params.name, params.seed, params.day, params.as_dict(), now)],
    )
    first_ids: dict[str, int] = {}
    for i, table in enumerate(master.tables):
        report("master data", i, len(master.tables))
        _write_table(loader, table, first_ids)
    report("master data", len(master.tables), len(master.tables))

    plan = OrderPlan(master, seed=params.seed, day=params.day, orders=params.orders)
    loader.orders_total = params.orders
    # Take the first ids before the writer thread owns the connection.
    loader.take_ids("orders", 0)
    loader.take_ids("order_lines", 0)
    loader.begin_orders(defer_indexes=params.orders >= DEFER_INDEXES_FROM)
    report("orders", 0, params.orders)
    n_orders = n_lines = units = presale = 0
    for chunk in plan.chunks(params.chunk):
        n, n_chunk_lines = chunk.n, len(chunk.line_sku)
        order_first = loader.take_ids("orders", n)
        line_first = loader.take_ids("order_lines", n_chunk_lines)
        loader.write_orders(
            OrderRows(
                chunk=chunk,
                day=params.day,
                order_ids=np.arange(order_first, order_first + n, dtype=np.int64),
                line_ids=np.arange(line_first, line_first + n_chunk_lines, dtype=np.int64),
                shop_ids=chunk.shop + first_ids["platform_shops"],
                merchant_ids=chunk.merchant + first_ids["merchants"],
                sku_ids=chunk.line_sku + first_ids["skus"],
                platform=master.shop_platform[chunk.shop],
                platform_order_ids=plan.platform_order_ids(chunk),
                sealed=_seal(sealer, receiver_plaintexts(chunk)),
            )
        )
        n_orders += n
        n_lines += n_chunk_lines
        units += int(chunk.line_qty.sum())
        presale += int(chunk.presale.sum())
    loader.end_orders()

    sizes = {t.name: len(t) for t in master.tables}
    return BeltSummary(
        belt_id=belt_id,
        name=params.name,
        seed=params.seed,
        day=params.day,
        database=loader.engine.dialect.name,
        process_families=sizes["process_families"],
        merchants=sizes["merchants"],
        platform_shops=sizes["platform_shops"],
        platform_sku_mappings=sizes["platform_sku_mappings"],
        styles=sizes["styles"],
        skus=sizes["skus"],
        workshops=sizes["workshops"],
        workshop_capacity=sizes["workshop_capacity"],
        qualifications=sizes["qualifications"],
        shared_warehouses=sizes["shared_warehouses"],
        stock=sizes["stock"],
        couriers=sizes["couriers"],
        courier_points=sizes["courier_points"],
        courier_prices=sizes["courier_prices"],
        orders=n_orders,
        order_lines=n_lines,
        units=units,
        presale_orders=presale,
        seconds=round(time.perf_counter() - started, 3),
    )


def clear_belt(engine: Engine) -> None:
    """Delete every row of every table of the domain model (children first; TRUNCATE on PostgreSQL).

    Sequences are left where they are, so ids are never reused: anything still holding an old id (a job in
    a queue, a log line) cannot come to mean a new row.
    """
    with engine.begin() as conn:
        existing = set(inspect(conn).get_table_names())
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
        if not tables:
            return
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
        else:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))
