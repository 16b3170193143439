"""Micro-benchmark of :mod:`fulfil.dbcolumns` on PostgreSQL: one JSON line per measurement.

    DATABASE_URL='postgresql://root@127.0.0.1:5432/test?options=-csearch_path%3Dbench_copy' \\
        .venv/bin/python -m fulfil.dbcolumns_bench --rows 12000000

Everything happens in the schema the URL's ``search_path`` names first, which the benchmark creates (it must
not exist yet) and drops at the end. Measured, each as seconds and rows/s (commit included for writes):

- ``read_int8x4``: ``read_columns`` of four ``int8`` columns of a ``--rows`` table;
  ``read_int8x4_legacy``: the same through ``fulfil.planning.load._columns`` (rows as tuples), at
  ``--legacy-rows``.
- ``write_decisions``: ``write_columns`` of rows shaped like ``allocation_decisions`` (ids, a date, ints, a
  bool, two text columns, four nullable ids of which two are NULL in every row) into ``scratch``: an UNLOGGED
  copy of the table's columns with no index, key or constraint; and into ``real_ddl``: the table as the model
  declares it (logged, primary key, three indexes, six foreign keys, two checks), whose foreign keys point at
  stub parent tables holding just the referenced ids; ``--indexed-rows`` caps this one. In between, to tell
  what the WAL, the indexes and the foreign keys each cost: ``logged_bare``, the bare table but logged;
  ``indexed_no_fk``, logged with the primary key, indexes and checks but no foreign key (``LIKE ...
  INCLUDING ALL``). ``text``: whether the two text columns came as ``Categorical`` or as one ``str`` per
  row (object arrays).
- ``write_decisions_legacy``: ``fulfil.planning.write.bulk_insert`` (psycopg's ``write_row`` per row) of the
  same rows as Python lists, the way ``write_plan`` hands them over, at ``--legacy-rows`` into ``scratch``;
  building the lists is reported apart (``prepare_seconds``). ``write_decisions`` at the same row count
  follows for a like-for-like figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from sqlalchemy import Engine, MetaData, Table, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.dbcolumns import Categorical, read_columns, write_columns
from fulfil.domain.models import AllocationDecision
from solvers.allocation import WHY_TEXT

LATE = "; late: no capacity before ship-by"
PARENTS = {"solver_runs": 1, "workshops": 200, "shared_warehouses": 20, "merchants": 100, "work_orders": 5000}


def _emit(measure: str, rows: int, seconds: float, **extra: Any) -> None:
    line = {"measure": measure, "rows": rows, "seconds": round(seconds, 3)}
    line["rows_per_s"] = round(rows / seconds) if seconds > 0 else None
    print(json.dumps({**line, **extra}), flush=True)


@contextmanager
def _timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


def _engine() -> Engine:
    url = make_url(os.environ.get("DATABASE_URL", ""))
    if url.get_backend_name() != "postgresql":
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (with a search_path of its own)")
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return db.make_engine(url.render_as_string(hide_password=False))


def _bench_schema(eng: Engine) -> str:
    """The first schema of the URL's search_path: the benchmark's own, so it must not exist yet."""
    with eng.connect() as c:
        path = str(c.execute(text("SHOW search_path")).scalar_one())
        schema = path.split(",")[0].strip().strip('"')
        exists = c.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
    if schema in ("public", "$user", "") or schema.startswith("pg_"):
        raise SystemExit(f"search_path starts with {schema!r}: give the benchmark a schema of its own")
    if exists:
        raise SystemExit(
            f"schema {schema} exists; drop it first (DROP SCHEMA {schema} CASCADE) or pick another"
        )
    return schema


def _autocommit(eng: Engine, *statements: str) -> None:
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for s in statements:
            c.execute(text(s))


# --- reading ---------------------------------------------------------------------------------------------


def bench_read(eng: Engine, rows: int, legacy_rows: int, repeat: int) -> None:
    _autocommit(
        eng,
        "CREATE UNLOGGED TABLE read4 AS SELECT g::int8 AS a, g::int8 * 7919 AS b, (g % 1000)::int8 AS c,"
        f" (-g)::int8 AS d FROM generate_series(1, {rows}) AS g",
        "VACUUM (ANALYZE) read4",  # sets hint bits now rather than during the first measured read
    )
    t = Table("read4", MetaData(), autoload_with=eng)
    query = select(t.c.a, t.c.b, t.c.c, t.c.d)
    for _ in range(repeat):
        with eng.connect() as c, _timed() as took:
            cols = read_columns(c, query, [np.int64] * 4)
        assert cols[0].shape == (rows,) and int(cols[3][-1]) == -int(cols[0][-1])
        del cols
        _emit("read_int8x4", rows, took[0], path="dbcolumns.read_columns")
    from fulfil.planning.load import _columns  # the current reader: rows as tuples, then numpy

    n = min(rows, legacy_rows)
    with Session(eng) as session, _timed() as took:
        legacy = _columns(session, query.where(t.c.a <= n), [np.int64] * 4)
    assert legacy[0].shape == (n,)
    _emit("read_int8x4_legacy", n, took[0], path="planning.load._columns")


# --- writing ---------------------------------------------------------------------------------------------


def decisions(rows: int, seed: int = 7, *, objects: bool = False) -> dict[str, Any]:
    """Columns shaped like a plan's allocation decisions: 80% made in workshops, 20% from stock.

    The text columns are :class:`Categorical` (codes into the few sources and reasons), as the planner
    has them; ``objects``: one ``str`` per row in object arrays instead, the slow path.
    """
    rng = np.random.default_rng(seed)
    made = rng.random(rows) < 0.8
    late = rng.random(rows) < 0.05
    why = [*WHY_TEXT.values(), *(w + LATE for w in WHY_TEXT.values())]
    why_code = rng.integers(0, len(WHY_TEXT), rows) + np.where(late, len(WHY_TEXT), 0)
    sources = ["warehouse", "workshop"]
    source: Any = Categorical(made.astype(np.int8), sources)
    reason: Any = Categorical(why_code, why)
    if objects:
        source = np.array(sources, dtype=object)[source.codes]
        reason = np.array(why, dtype=object)[why_code]
    return {
        "solver_run_id": np.ones(rows, np.int64),
        "order_line_id": np.arange(1, rows + 1, dtype=np.int64),
        "source": source,
        "workshop_id": np.ma.MaskedArray(rng.integers(1, PARENTS["workshops"] + 1, rows), mask=~made),
        "warehouse_id": np.ma.MaskedArray(rng.integers(1, PARENTS["shared_warehouses"] + 1, rows), mask=made),
        "stock_owner_id": np.ma.MaskedArray(rng.integers(1, PARENTS["merchants"] + 1, rows), mask=made),
        "work_order_id": np.ma.MaskedArray(rng.integers(1, PARENTS["work_orders"] + 1, rows), mask=~made),
        "day": np.datetime64("2026-11-23") + rng.integers(0, 7, rows).astype("timedelta64[D]"),
        "quantity": rng.integers(1, 6, rows),
        "goods_fen": rng.integers(500, 5000, rows),
        "overtime_fen": np.where(rng.random(rows) < 0.1, rng.integers(1, 300, rows), 0),
        "shipping_fen": rng.integers(300, 1500, rows),
        "late": late,
        "reason": reason,
    }


def _as_lists(columns: dict[str, Any]) -> dict[str, Sequence[Any]]:
    """The columns as ``write_plan`` hands them to ``bulk_insert``: lists, None for NULL, dates as dates."""
    out: dict[str, Sequence[Any]] = {}
    for name, values in columns.items():
        plain = np.ma.getdata(values).astype(object)
        plain[np.ma.getmaskarray(values)] = None
        out[name] = plain.tolist()
    return out


def _create_tables(eng: Engine, parent_rows: int) -> None:
    """Stub parents (just the referenced ids), the real table from the model, and the bare scratch copy."""
    statements = [
        f"CREATE TABLE {name} AS SELECT g::int8 AS id FROM generate_series(1, {n}) AS g"
        for name, n in {**PARENTS, "order_lines": parent_rows}.items()
    ]
    statements += [f"ALTER TABLE {name} ADD PRIMARY KEY (id)" for name in (*PARENTS, "order_lines")]
    _autocommit(eng, *statements)
    with eng.begin() as c:
        cast(Table, AllocationDecision.__table__).create(c)
        c.execute(text("CREATE UNLOGGED TABLE scratch (LIKE allocation_decisions INCLUDING DEFAULTS)"))
        c.execute(text("CREATE TABLE logged (LIKE allocation_decisions INCLUDING DEFAULTS)"))
        # LIKE copies indexes and checks but never foreign keys: what the keys cost is the difference
        c.execute(text("CREATE TABLE indexed (LIKE allocation_decisions INCLUDING ALL)"))
    # the bench's own tables only: a bare VACUUM would go through every schema of the database
    _autocommit(eng, f"VACUUM (ANALYZE) {', '.join((*PARENTS, 'order_lines'))}")


def _truncate(eng: Engine, name: str) -> None:
    with eng.begin() as c:
        c.execute(text(f"TRUNCATE {name}"))


def _write_once(eng: Engine, table: str, columns: dict[str, Any]) -> float:
    _truncate(eng, table)
    with eng.connect() as c, _timed() as took:
        write_columns(c, table, columns)
        c.commit()
    return took[0]


def bench_write(eng: Engine, rows: int, indexed_rows: int, repeat: int) -> None:
    with _timed() as took:
        _create_tables(eng, max(rows, indexed_rows))
    _emit("setup_parent_tables", max(rows, indexed_rows), took[0])
    columns = decisions(rows)
    for _ in range(repeat):
        _emit(
            "write_decisions", rows, _write_once(eng, "scratch", columns), table="scratch", text="categorical"
        )
    as_objects = decisions(rows, objects=True)
    _emit("write_decisions", rows, _write_once(eng, "scratch", as_objects), table="scratch", text="objects")
    del as_objects
    for name, label in (("logged", "logged_bare"), ("indexed", "indexed_no_fk")):
        for _ in range(repeat):
            _emit("write_decisions", rows, _write_once(eng, name, columns), table=label)
        _truncate(eng, name)
    if indexed_rows:
        part = columns if indexed_rows == rows else decisions(indexed_rows)
        for _ in range(repeat):
            _emit(
                "write_decisions",
                indexed_rows,
                _write_once(eng, "allocation_decisions", part),
                table="real_ddl",
            )
    _truncate(eng, "allocation_decisions")


def bench_legacy_write(eng: Engine, rows: int) -> None:
    from fulfil.planning.write import bulk_insert  # the current writer: psycopg's write_row per row

    columns = decisions(rows, objects=True)  # bulk_insert takes plain values
    with _timed() as prep:
        lists = _as_lists(columns)
    scratch = Table("scratch", MetaData(), autoload_with=eng)
    _truncate(eng, "scratch")
    with Session(eng) as session, _timed() as took:
        bulk_insert(session, scratch, lists)
        session.commit()
    _emit("write_decisions_legacy", rows, took[0], table="scratch", prepare_seconds=round(prep[0], 3))
    _emit("write_decisions", rows, _write_once(eng, "scratch", columns), table="scratch", text="objects")
    columns = decisions(rows)
    _emit("write_decisions", rows, _write_once(eng, "scratch", columns), table="scratch", text="categorical")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--legacy-rows", type=int, default=1_000_000, help="rows for the current code paths")
    parser.add_argument(
        "--indexed-rows", type=int, default=None, help="rows into the real DDL (default --rows)"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", choices=("read", "write", "legacy"), action="append", help="run only these")
    args = parser.parse_args(argv)
    eng = _engine()
    schema = _bench_schema(eng)
    _autocommit(eng, f'CREATE SCHEMA "{schema}"')
    runs: dict[str, Callable[[], None]] = {
        "read": lambda: bench_read(eng, args.rows, args.legacy_rows, args.repeat),
        "write": lambda: bench_write(
            eng, args.rows, args.rows if args.indexed_rows is None else args.indexed_rows, args.repeat
        ),
        "legacy": lambda: bench_legacy_write(eng, min(args.rows, args.legacy_rows)),
    }
    try:
        for name in args.only or list(runs):
            if name == "legacy" and "write" not in (args.only or list(runs)):
                _create_tables(eng, min(args.rows, args.legacy_rows))
            runs[name]()
    finally:
        eng.dispose()  # pooled connections hold the schema's tables open
        _autocommit(eng, f'DROP SCHEMA "{schema}" CASCADE')
        eng.dispose()


if __name__ == "__main__":
    main()
