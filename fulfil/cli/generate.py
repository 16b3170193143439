"""``fulfil generate`` and ``fulfil bench generate``: a Changshu-like belt and a day of orders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import Engine

from fulfil import db, migrate, settings
from fulfil.belt.generate import BeltError, BeltParams, BeltSummary, belt_today, clear_belt, generate_belt
from fulfil.cli import console, main
from fulfil.cli.bench import bench, emit, peak_rss_mb
from fulfil.pii import Sealer


def _belt_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--orders", type=click.IntRange(min=1), default=20_000, show_default=True,
                     help="Orders in the day."),
        click.option("--workshops", type=click.IntRange(min=1),
                     help="Workshops [default: orders/100, 20–5,000]."),
        click.option("--warehouses", type=click.IntRange(min=1),
                     help="Shared warehouses [default: orders/2,000, 3–60]."),
        click.option("--skus", type=click.IntRange(min=1), help="SKUs [default: orders/10, 200–40,000]."),
        click.option("--merchants", type=click.IntRange(min=1),
                     help="Merchants [default: orders/400, 10–500]."),
        click.option("--seed", type=int, default=1, show_default=True, help="Seed of the plain data."),
        click.option("--day", type=click.DateTime(formats=["%Y-%m-%d"]),
                     help="The day (belt local date) [default: today]."),
        click.option("--chunk", type=click.IntRange(min=1_000), default=100_000, show_default=True,
                     help="Orders generated and written at a time (bounds memory, not the data)."),
        click.option("--reset", is_flag=True, help="First delete ALL rows of ALL tables (clear_belt)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def _params(opts: dict[str, Any]) -> BeltParams:
    day: dt.datetime | None = opts["day"]
    return BeltParams.scaled(
        opts["orders"],
        workshops=opts["workshops"],
        warehouses=opts["warehouses"],
        skus=opts["skus"],
        merchants=opts["merchants"],
        seed=opts["seed"],
        day=day.date() if day else belt_today(),
        chunk=opts["chunk"],
    )


def _migrated_engine() -> Engine:
    eng = db.engine(settings.get().database_url)
    current, head = migrate.current(eng), migrate.head()
    if current != head:
        raise click.ClickException(
            f"the database schema is at revision {current or 'none (empty database)'} but this code needs "
            f"{head}: run `fulfil migrate` first"
        )
    return eng


@contextmanager
def _progress_bars(to: Console) -> Iterator[Callable[[str, int, int], None]]:
    bars = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=to,
    )
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield report


def _run(opts: dict[str, Any]) -> tuple[BeltParams, BeltSummary]:
    params = _params(opts)
    try:
        params.validate()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    eng = _migrated_engine()
    if opts["reset"]:
        clear_belt(eng)
        console.print("cleared all rows of all tables")
    sealer = Sealer(settings.get().pii_key)
    try:
        with _progress_bars(console) as report:
            summary = generate_belt(eng, params, sealer, report)
    except BeltError as exc:
        raise click.ClickException(str(exc)) from None
    return params, summary


@main.command("generate")
@_belt_options
def generate_cmd(**opts: Any) -> None:
    """Generate a Changshu-like belt and a day of orders into the configured database."""
    _, s = _run(opts)
    table = Table(title=f"belt {s.name!r} · seed {s.seed} · day {s.day} · {s.database}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, count in s.counts().items():
        table.add_row(name.replace("_", " "), f"{count:,}")
    table.add_row("seconds", f"{s.seconds:,.1f}")
    table.add_row("orders per second", f"{s.orders / max(s.seconds, 1e-9):,.0f}")
    Console().print(table)


@bench.command("generate")
@_belt_options
def bench_generate_cmd(**opts: Any) -> None:
    """Generate a belt and print {"bench": "generate", ...} as one JSON line (progress on stderr)."""
    params, s = _run(opts)
    emit(
        {
            "bench": "generate",
            "database": s.database,
            "orders": s.orders,
            "order_lines": s.order_lines,
            "seconds": s.seconds,
            "orders_per_s": round(s.orders / max(s.seconds, 1e-9)),
            "peak_rss_mb": peak_rss_mb(),
            "chunk": params.chunk,
            "workshops": s.workshops,
            "skus": s.skus,
        }
    )
