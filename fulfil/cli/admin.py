"""Administration: migrations, keys, settings."""

from __future__ import annotations

import click

from fulfil import db, migrate, settings
from fulfil.cli import console, main


@main.command("migrate")
def migrate_cmd() -> None:
    """Bring the database schema up to date (Alembic upgrade to head)."""
    s = settings.get()
    eng = db.engine(s.database_url)
    before = migrate.current(eng)
    migrate.upgrade(eng)
    after = migrate.current(eng)
    if before == after:
        console.print(f"schema is current (revision {after})")
    else:
        console.print(f"schema migrated from {before or 'empty'} to {after}")


@main.command("keygen")
def keygen_cmd() -> None:
    """Print a new key for FULFIL_PII_KEY (32 random bytes, url-safe base64)."""
    click.echo(settings.new_key())


@main.command("config")
def config_cmd() -> None:
    """Show the settings in force, with secrets hidden."""
    console.print(repr(settings.get()))
