"""Alembic environment: runs on the connection :mod:`fulfil.migrate` hands it, or on the settings' URL."""

from __future__ import annotations

from alembic import context

from fulfil import db
from fulfil.domain.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url") or None
        with db.make_engine(url or db.engine().url.render_as_string(hide_password=False)).begin() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
