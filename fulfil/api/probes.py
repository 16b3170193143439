"""Readiness probes: is the database reachable and migrated, is Redis answering.

Each probe runs its blocking client call in a worker thread under a deadline. A probe that misses its
deadline is abandoned (a thread cannot be cancelled), and until it returns the next call reports at once
instead of starting another: a hung dependency must not pile up threads or pool connections.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

import anyio
import anyio.to_thread
import redis
from sqlalchemy import Engine

from fulfil import db, migrate

REASON_MAX = 200
_URL_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)[^@/\s]*@")


class NotReady(Exception):
    """A dependency answers but is not fit to serve (e.g. the schema is behind)."""


def check_database(engine: Engine, head: str | None) -> None:
    db.ping(engine)
    current = migrate.current(engine)
    if current != head:
        raise NotReady(f"schema at revision {current or 'none'}, expected {head}; run `fulfil migrate`")


def check_redis(conn: redis.Redis) -> None:
    if not conn.ping():
        raise NotReady("PING was not answered with PONG")


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One short line naming what failed, with credentials scrubbed; never a traceback."""
    if isinstance(exc, NotReady):
        text = str(exc)
    else:
        # SQLAlchemy wraps the driver's error and appends the SQL and a help link; the driver's first line
        # is the useful part.
        inner = getattr(exc, "orig", None)
        inner = inner if isinstance(inner, BaseException) else exc
        lines = str(inner).strip().splitlines()
        text = f"{type(inner).__name__}: {lines[0].strip()}" if lines else type(inner).__name__
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


class Probe:
    """A named check with a deadline. ``run`` returns ``None`` when healthy, else a short reason."""

    def __init__(
        self, name: str, check: Callable[[], None], timeout: float, secrets: Iterable[str] = ()
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._check = check
        self._secrets = tuple(secrets)
        self._in_flight = threading.Event()

    def _call(self) -> str | None:
        # Marked here, in the thread, not by the caller: a call cancelled before its thread started never
        # runs, and must not leave the probe looking busy for ever.
        self._in_flight.set()
        try:
            self._check()
        except Exception as exc:
            return describe(exc, self._secrets)
        finally:
            self._in_flight.clear()
        return None

    async def run(self) -> str | None:
        if self._in_flight.is_set():
            return f"an earlier check has not answered within {self.timeout:g}s"
        try:
            with anyio.fail_after(self.timeout):
                return await anyio.to_thread.run_sync(self._call, abandon_on_cancel=True)
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"


async def run_all(probes: Iterable[Probe]) -> dict[str, str | None]:
    """Run the probes concurrently; the whole call takes at most the longest deadline."""
    results: dict[str, str | None] = {}

    async def one(probe: Probe) -> None:
        results[probe.name] = await probe.run()

    probes = list(probes)
    async with anyio.create_task_group() as tg:
        for probe in probes:
            tg.start_soon(one, probe)
    return {p.name: results[p.name] for p in probes}
