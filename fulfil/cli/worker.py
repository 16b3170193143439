"""Jobs and batching: ``fulfil worker``, ``fulfil outbox ...``, ``fulfil batches ...``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

import click
from rich.console import Console
from rich.table import Table

from fulfil import db, redis_conn, settings
from fulfil.cli import console, main
from fulfil.jobs import tasks


def _setup_logging() -> str:
    level = settings.get().log_level
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return level


@main.command("worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    type=click.Choice(tasks.QUEUES),
    help="A queue to work on (repeatable); default: all of them, in priority order.",
)
@click.option("--burst", is_flag=True, help="Quit when the queues and the outbox are empty.")
@click.option(
    "--drain-interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between drains of the outbox.",
)
@click.option(
    "--tick-interval",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds between batching ticks (assign paid orders, close due batches); one worker per interval "
    "enqueues it. 0: never. Burst workers never tick.",
)
def worker_cmd(queues: tuple[str, ...], burst: bool, drain_interval: float, tick_interval: float) -> None:
    """Run an rq worker on the configured Redis, draining the outbox as it goes."""
    from fulfil.jobs import worker

    level = _setup_logging()
    worker.run(
        redis_conn.connect(),
        queues,
        burst=burst,
        drain_interval=drain_interval,
        tick_interval=tick_interval or None,
        logging_level=level,
    )


@main.group("outbox")
def outbox_group() -> None:
    """The transactional outbox of jobs waiting for rq."""


@outbox_group.command("drain")
def outbox_drain_cmd() -> None:
    """Push every pending outbox row to rq now."""
    from fulfil.jobs import outbox

    _setup_logging()
    n = outbox.drain(db.engine(), redis_conn.connect())
    console.print(f"outbox: {n} job(s) drained")


@outbox_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def outbox_stats_cmd(as_json: bool) -> None:
    """Pending and enqueued jobs per task."""
    from fulfil.jobs import outbox

    rows = outbox.stats(db.engine())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tasks": {
                        r.task: {
                            "pending": r.pending,
                            "enqueued": r.enqueued,
                            "oldest_pending": r.oldest_pending.isoformat() if r.oldest_pending else None,
                        }
                        for r in rows
                    },
                    "pending": sum(r.pending for r in rows),
                    "enqueued": sum(r.enqueued for r in rows),
                }
            )
        )
        return
    table = Table("task", "pending", "enqueued", "oldest pending (UTC)")
    for r in rows:
        table.add_row(r.task, str(r.pending), str(r.enqueued), str(r.oldest_pending or "—"))
    table.add_row(
        "total", str(sum(r.pending for r in rows)), str(sum(r.enqueued for r in rows)), "", style="bold"
    )
    Console().print(table)  # stdout: the table is the command's output


@main.group("batches")
def batches_group() -> None:
    """Batches of paid orders waiting to be planned."""


def _parse_now(value: str | None) -> dt.datetime:
    from fulfil.batching import utcnow

    if value is None:
        return utcnow()
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time (e.g. 2024-06-18T20:15:00)") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


@batches_group.command("tick")
@click.option("--now", "now_text", metavar="ISO", help="The time to tick at (UTC); default: now.")
@click.option("--window-minutes", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--max-size", type=click.IntRange(min=1), default=50_000, show_default=True)
def batches_tick_cmd(now_text: str | None, window_minutes: int, max_size: int) -> None:
    """Assign paid orders to batches and close the batches whose window has ended."""
    from fulfil import batching

    now = _parse_now(now_text)
    _setup_logging()
    with db.session_scope() as session:
        result = batching.tick(session, now, dt.timedelta(minutes=window_minutes), max_size)
    console.print(
        f"tick at {now.isoformat(sep=' ')}: orders went to {len(result.assigned_to)} batch(es), "
        f"{len(result.closed)} batch(es) closed by their window"
        + (f" ({', '.join(map(str, result.closed))})" if result.closed else "")
    )


@batches_group.command("close")
@click.argument("batch_id", type=int)
def batches_close_cmd(batch_id: int) -> None:
    """Close a batch now (an operator's trigger) and enqueue its planning."""
    from fulfil import batching
    from fulfil.domain.states import IllegalTransition

    _setup_logging()
    try:
        with db.session_scope() as session:
            closed = batching.close_batch(session, batch_id)
    except (batching.BatchNotFound, IllegalTransition) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"batch {batch_id}: " + ("closed; planning enqueued" if closed else "was already closed"))


@batches_group.command("list")
@click.option("--status", type=click.Choice(["open", "closed", "planned", "failed"]))
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def batches_list_cmd(status: str | None, limit: int, as_json: bool) -> None:
    """The newest batches, newest first."""
    from fulfil import batching

    with db.session_scope() as session:
        rows = batching.list_batches(session, status, limit)
    if as_json:
        for r in rows:
            click.echo(
                json.dumps(
                    {
                        "id": r.id,
                        "status": r.status,
                        "window_start": r.window_start.isoformat(),
                        "window_end": r.window_end.isoformat(),
                        "order_count": r.order_count,
                        "close_reason": r.close_reason,
                        "closed_at": r.closed_at.isoformat() if r.closed_at else None,
                    }
                )
            )
        return
    table = Table("batch", "status", "window (UTC)", "orders", "closed by", "closed at (UTC)")
    for r in rows:
        table.add_row(
            str(r.id),
            r.status,
            f"{r.window_start:%Y-%m-%d %H:%M}–{r.window_end:%H:%M}",
            str(r.order_count),
            r.close_reason or "—",
            f"{r.closed_at:%Y-%m-%d %H:%M:%S}" if r.closed_at else "—",
        )
    Console().print(table)  # stdout: the table is the command's output
