"""``fulfil bench ...``: benchmarks. Each prints one JSON line per result on stdout, progress on stderr."""

from __future__ import annotations

import datetime as dt
import json
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx
from sqlalchemy import Engine

from fulfil.cli import main


@main.group("bench")
def bench() -> None:
    """Benchmarks against the configured database; each prints one JSON line per result."""


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def progress(message: str) -> None:
    """A progress line on stderr, where it stays out of the JSON on stdout."""
    click.echo(message, err=True)


def emit(result: dict[str, Any]) -> None:
    """Print one benchmark result as one JSON line on stdout."""
    click.echo(json.dumps(result, ensure_ascii=False))


def _serve(port: int) -> subprocess.Popen[str]:
    """``fulfil serve --workers 2`` on ``port``, listening when this returns."""
    exe = Path(sys.executable).with_name("fulfil")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise click.ClickException(f"fulfil serve exited with {proc.returncode} before listening")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise click.ClickException("fulfil serve did not start listening within 60 s") from None
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_inbox_rows(engine: Engine, n: int, raw: bytes) -> float:
    """Raw COPY of ``n`` inbox rows like the simulator's into ``inbox``, then deleted; rows per second."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    tag = f"bench-copy-{time.time_ns()}-"
    columns = (
        "platform, message_id, app_key, topic, event, shop_code, platform_order_id, occurred_at, "
        "received_at, raw, status, attempts"
    )
    conn = engine.raw_connection()
    try:
        pg = conn.driver_connection
        assert pg is not None
        with pg.cursor() as cur:
            started = time.perf_counter()
            with cur.copy(f"COPY inbox ({columns}) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row(
                        (
                            "doudian",
                            f"{tag}{i}",
                            "sim-doudian",
                            "101",
                            "paid",
                            "88990001",
                            str(4_800_000 + i),
                            now,
                            now,
                            raw,
                            "received",
                            0,
                        )
                    )
            pg.commit()
            elapsed = time.perf_counter() - started
            cur.execute("DELETE FROM inbox WHERE message_id LIKE %s", (tag + "%",))
            pg.commit()
    finally:
        conn.close()
    return n / elapsed if elapsed > 0 else 0.0


@bench.command("ingest")
@click.option("--url", help="Base URL of a running API on PostgreSQL (or use --serve).")
@click.option(
    "--serve", "start_server", is_flag=True, help="Start `fulfil serve --workers 2` on a free port."
)
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--per-push", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
def ingest_cmd(url: str | None, start_server: bool, seconds: float, per_push: int, concurrency: int) -> None:
    """Webhook intake at full speed (Douyin pushes), against a raw COPY of as many inbox rows."""
    from fulfil import db, settings
    from fulfil.intake import loadgen
    from fulfil.pii import Sealer

    if (url is None) == (not start_server):
        raise click.UsageError("give exactly one of --url and --serve")
    s = settings.get()
    engine = db.engine(s.database_url)
    if not db.is_postgresql(engine):
        raise click.UsageError("bench ingest compares with PostgreSQL COPY: DATABASE_URL must be PostgreSQL")
    credential = loadgen.default_credential("doudian")
    loadgen.setup(engine, Sealer(s.pii_key), credential)
    proc = None
    if start_server:
        port = _free_port()
        proc = _serve(port)
        url = f"http://127.0.0.1:{port}"
    assert url is not None
    fake = loadgen.make_fake(credential, seed=time.time_ns() % 1000)
    try:
        result = loadgen.simulate(url, fake, seconds=seconds, per_push=per_push, concurrency=concurrency)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    out = result.as_json()
    raw = fake.push(fake.create_orders(1))[1]
    copy_rate = copy_inbox_rows(engine, max(result.acknowledged, 1), raw)
    out["copy_rows_per_s"] = round(copy_rate, 1)
    out["ratio"] = round(out["orders_per_s"] / copy_rate, 4) if copy_rate else None
    out["peak_rss_mb"] = peak_rss_mb()
    emit({"bench": "ingest", **out})


@bench.command("normalise")
@click.option("--orders", default=20_000, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--per-push", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Round trip of each platform API call (the fake answers after it).",
)
@click.option(
    "--listing/--no-listing",
    default=True,
    show_default=True,
    help="Whether the fake grants order.searchList (without it, one order.orderDetail call per order).",
)
def normalise_cmd(orders: int, workers: int, per_push: int, latency_ms: float, listing: bool) -> None:
    """Normalisation of a burst of Douyin orders by forked rq burst workers."""
    from fulfil import db, redis_conn, settings
    from fulfil.intake import normbench
    from fulfil.pii import Sealer

    s = settings.get()
    engine = db.engine(s.database_url)
    try:
        result = normbench.run(
            engine,
            redis_conn.connect(s),
            Sealer(s.pii_key),
            orders=orders,
            workers=workers,
            per_push=per_push,
            latency_ms=latency_ms,
            listing=listing,
            seed=time.time_ns() % 100_000,
            progress=progress,
        )
    except normbench.BusyQueue as exc:
        raise click.ClickException(str(exc)) from None
    result["database"] = engine.dialect.name
    result["peak_rss_mb"] = peak_rss_mb()
    emit({"bench": "normalise", **result})
