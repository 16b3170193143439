"""The backend fixture: every test that asks for ``backend`` runs on SQLite + embedded Redis, and also
on PostgreSQL + Redis when ``FULFIL_TEST_DATABASE_URL`` / ``FULFIL_TEST_REDIS_URL`` are set (``.ci/run``).

Each backend gets its own data directory; on PostgreSQL its own schema (carried in the URL, so subprocesses
started by a test see the same one) and on Redis its own database number per xdist worker.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from sqlalchemy import Engine, text

from fulfil import db, migrate, redis_conn, settings
from fulfil.domain.models import Base

PG_URL = os.environ.get("FULFIL_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("FULFIL_TEST_REDIS_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
if bool(PG_URL) != bool(REDIS_URL):
    raise RuntimeError("set both FULFIL_TEST_DATABASE_URL and FULFIL_TEST_REDIS_URL, or neither")


@dataclass
class Backend:
    name: str
    env: dict[str, str]  # what a subprocess needs to see this backend
    settings: settings.Settings
    engine: Engine
    redis: redis.Redis

    def truncate(self) -> None:
        self.truncate_tables_only()
        self.redis.flushdb()

    def truncate_tables_only(self) -> None:
        """Empty every table and restart ids, keeping Redis as it is."""
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with self.engine.begin() as conn:
            if self.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for t in tables:
                    conn.execute(text(f"DELETE FROM {t}"))


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") else 0


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    data_dir: Path = tmp_path_factory.mktemp(f"data-{request.param}")
    env = {"FULFIL_DATA_DIR": str(data_dir), "FULFIL_PII_KEY": settings.new_key()}
    schema = None
    if request.param == "postgresql":
        assert PG_URL and REDIS_URL
        schema = f"t_{os.getpid()}_{secrets.token_hex(4)}"
        admin = db.make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in PG_URL else "?"
        env["DATABASE_URL"] = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
        env["REDIS_URL"] = f"{REDIS_URL.rstrip('/')}/{1 + _worker_index() % 15}"
    saved = {k: os.environ.get(k) for k in (*env, "DATABASE_URL", "REDIS_URL")}
    os.environ.update(env)
    if request.param == "sqlite":
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
    settings.get.cache_clear()
    s = settings.get()
    eng = db.engine(s.database_url)
    migrate.upgrade(eng)
    rconn = redis_conn.connect(s)
    b = Backend(request.param, env, s, eng, rconn)
    b.truncate()
    try:
        yield b
    finally:
        eng.dispose()
        if schema:
            with admin.begin() as c:
                c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
            rconn.flushdb()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings.get.cache_clear()


@pytest.fixture
def clean(backend: Backend) -> Iterator[Backend]:
    """The backend with empty tables and an empty Redis database."""
    backend.truncate()
    yield backend
