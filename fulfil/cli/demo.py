"""``fulfil demo``: the simulated day, with progress bars and a summary table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fulfil.cli import console, main

_LABELS = {
    "generate": "generating the belt",
    "stream": "live stream: webhooks, pulls, normalising",
    "batch": "batching on the simulated clock",
    "plan": "planning batches (workers)",
    "execute": "executing the plan, day by day",
}


class RichProgress:
    """The demo's progress, as rich bars on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, step: str, total: int | None) -> None:
        self.tasks[step] = self.progress.add_task(_LABELS.get(step, step), total=total)

    def advance(self, step: str, completed: int, total: int | None = None, detail: str | None = None) -> None:
        if step not in self.tasks:
            self.start(step, total)
        label = _LABELS.get(step, step) + (f": {detail}" if detail else "")
        if total is not None:
            self.progress.update(self.tasks[step], completed=completed, total=total, description=label)
        else:
            self.progress.update(self.tasks[step], completed=completed, description=label)

    def finish(self, step: str) -> None:
        task = self.tasks.get(step)
        if task is not None:
            total = self.progress.tasks[task].total
            done = self.progress.tasks[task].completed
            self.progress.update(
                task, total=total if total is not None else max(done, 1), completed=total or max(done, 1)
            )

    def note(self, message: str) -> None:
        self.progress.console.print(f"[yellow]{message}[/yellow]")


def _summary(report: Any) -> Table:
    table = Table(title="the simulated day", show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("orders", f"{report.orders:,}"),
        ("order lines", f"{report.order_lines:,}"),
        (
            "batches",
            f"{report.batches:,}" + (f" ({report.batches_failed} failed)" if report.batches_failed else ""),
        ),
        ("parcels", f"{report.parcels:,}"),
        ("orders packed / shipped", f"{report.orders_packed:,} / {report.orders_shipped:,}"),
        ("on-time share (parcels ready by ship-by)", f"{report.on_time_share:.1%}"),
        ("cost per parcel (goods + overtime + shipping)", f"¥{report.cost_per_parcel_yuan:,.2f}"),
        (
            "  of which goods / overtime / shipping",
            f"¥{report.goods_fen / 100:,.0f} / ¥{report.overtime_fen / 100:,.0f}"
            f" / ¥{report.shipping_fen / 100:,.0f}",
        ),
        ("workshop utilisation (used / regular minutes, days used)", f"{report.utilisation:.1%}"),
        ("work orders completed", f"{report.work_orders_completed:,} of {report.work_orders:,}"),
        ("orders late (planned after ship-by)", f"{report.orders_late:,}"),
        ("orders unfilled (exceptions with reasons)", f"{report.orders_unfilled:,}"),
    ]
    stream = report.stream
    if stream is not None:
        pushed = sum(p["acknowledged"] for p in stream.pushed.values())
        sent = sum(p["sent"] for p in stream.pushed.values())
        inbox = stream.inbox
        ends = [inbox.get(status, 0) for status in ("normalised", "ignored", "exception")]
        rows += [
            (
                f"stream: orders pushed to the webhooks (merchant {stream.merchant})",
                f"{pushed:,} of {sent:,} acknowledged",
            ),
            ("stream: orders pulled (Taobao, JD, Pinduoduo)", f"{sum(stream.pulled.values()):,}"),
            (
                "stream: messages normalised / ignored / exceptions",
                " / ".join(f"{n:,}" for n in ends),
            ),
        ]
        rows += [(f"  exceptions: {kind}", f"{n:,}") for kind, n in sorted(stream.exceptions.items())]
        if inbox.get("received"):
            rows.append(("stream: messages still waiting for a retry", f"{inbox['received']:,}"))
    if report.dispatch:
        waybills, pickups = report.waybills, report.pickups
        rows += [
            ("dispatch: parcels with a courier point", f"{report.parcels_with_courier:,}"),
            (
                "dispatch: waybills issued / pending / failed",
                " / ".join(f"{waybills.get(k, 0):,}" for k in ("issued", "pending", "failed")),
            ),
            (
                "dispatch: pickups booked / standing / collected / failed",
                " / ".join(f"{pickups.get(k, 0):,}" for k in ("booked", "standing", "collected", "failed")),
            ),
            (
                "dispatch: parcels in pickups / picked up",
                f"{report.parcels_in_pickups:,} / {report.parcels_picked_up:,}",
            ),
            ("dispatch: ship confirmations written", f"{report.ship_confirmations:,}"),
            ("dispatch: parcels with neither dispatch nor an exception", f"{report.parcels_unaccounted:,}"),
        ]
        rows += [
            (f"  exceptions: {kind}", f"{n:,}") for kind, n in sorted(report.dispatch_exceptions.items())
        ]
    for name, value in rows:
        table.add_row(name, value)
    for step, seconds in report.seconds.items():
        table.add_row(f"seconds: {step}", f"{seconds:.1f}", style="dim" if step != "total" else "bold")
    return table


@main.command("demo")
@click.option(
    "--orders", type=click.IntRange(min=1), default=20_000, show_default=True, help="Orders in the day."
)
@click.option("--workshops", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="The belt generator's seed.")
@click.option("--day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="The day (YYYY-MM-DD).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Planning workers.")
@click.option("--reset", is_flag=True, help="Allow clearing the belt in a configured DATABASE_URL.")
def demo_cmd(
    orders: int, workshops: int, seed: int, day: dt.datetime | None, workers: int, reset: bool
) -> None:
    """Run a simulated day of a generated belt end to end and print its summary."""
    from fulfil.demo import DemoError, DemoParams, run_demo

    params = DemoParams(
        orders=orders,
        workshops=workshops,
        seed=seed,
        day=day.date() if day else None,
        workers=workers,
        reset=reset,
    )
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bars:
            report = run_demo(params, RichProgress(bars))
    except DemoError as exc:
        console.print(f"[red]demo stopped[/red] {exc}")
        raise SystemExit(1) from None
    for note in report.notes:
        console.print(f"[yellow]note[/yellow] {note}")
    Console().print(_summary(report))
