"""Engines and sessions. Created lazily: importing this module opens no connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from fulfil import settings as _settings

_engines: dict[tuple[int, str], Engine] = {}


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so that SELECT ... then UPDATE in
        # one transaction is really one transaction (SQLAlchemy's documented recipe).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default: the settings' database).

    Keyed by pid: a forked rq work-horse must not share its parent's connections.
    """
    url = url or _settings.get().database_url
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def sqlite_write_lock(session_or_conn: Session | Connection, table: str = "batches") -> None:
    """On SQLite, take the database write lock now, at the start of a transaction that reads then writes.

    A deferred SQLite transaction that reads first and writes later fails outright (not after the busy
    timeout) when another connection committed in between; a write statement, even one matching nothing,
    takes the lock for the rest of the transaction, so concurrent writers queue up instead. A no-op elsewhere.
    """
    bind = session_or_conn.get_bind() if isinstance(session_or_conn, Session) else session_or_conn
    if bind.dialect.name == "sqlite":
        session_or_conn.execute(text(f"UPDATE {table} SET id = id WHERE 0"))


def sessionmaker_for(eng: Engine) -> sessionmaker[Session]:
    return sessionmaker(eng, expire_on_commit=False)


@contextmanager
def session_scope(eng: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with sessionmaker_for(eng or engine()).begin() as session:
        yield session


def ping(eng: Engine) -> None:
    with eng.connect() as conn:
        conn.execute(text("SELECT 1"))


def is_postgresql(eng: Engine) -> bool:
    return eng.dialect.name == "postgresql"


def unavailable(exc: BaseException) -> bool:
    """Is this the database being away (retry later), rather than a fault of ours?"""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
