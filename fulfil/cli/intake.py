"""Intake: ``fulfil apps ...`` (platform app credentials) and ``fulfil inbox stats``."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from fulfil import db, redis_conn, settings
from fulfil.cli import console, main


def _extras(pairs: tuple[str, ...]) -> dict[str, str]:
    extra: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair.split('=')[0]!r}...: expected NAME=VALUE", param_hint="--extra")
        if name in extra:
            raise click.BadParameter(f"{name!r} given twice", param_hint="--extra")
        extra[name] = value
    return extra


@main.group("apps")
def apps_group() -> None:
    """Platform apps: keys and sealed secrets (two may be active during a rotation)."""


@apps_group.command("add")
@click.option(
    "--platform", required=True, help="doudian, kuaishou, taobao, jd, pinduoduo, shopify, woocommerce."
)
@click.option("--app-key", required=True, help="The app's key (Douyin app-id, Kuaishou appKey, ...).")
@click.option(
    "--app-secret",
    required=True,
    help="The app's secret; '-' reads it from stdin (a secret on the command line stays in shell history).",
)
@click.option("--merchant", "merchant_code", help="The code of the merchant the app belongs to.")
@click.option(
    "--extra",
    "extra_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Something else the platform needs, sealed with the secret (repeatable), e.g. message_key=... "
    "for Kuaishou.",
)
def apps_add_cmd(
    platform: str, app_key: str, app_secret: str, merchant_code: str | None, extra_pairs: tuple[str, ...]
) -> None:
    """Register a platform app; the same key with a new secret adds a second active secret (rotation)."""
    from fulfil.intake import credentials
    from fulfil.pii import Sealer

    extra = _extras(extra_pairs)
    if app_secret == "-":
        # One line, its newline dropped: a secret piped from a file or a password manager.
        app_secret = sys.stdin.readline().rstrip("\r\n")
    sealer = Sealer(settings.get().pii_key)
    try:
        with db.session_scope() as session:
            app = credentials.register_app(
                session, sealer, platform, app_key, app_secret, merchant_code, extra
            )
            info = credentials.app_info(session, app, sealer)
    except credentials.CredentialError as exc:
        raise click.ClickException(str(exc)) from None
    extras = f", extras {', '.join(info.extra_keys)}" if info.extra_keys else ""
    console.print(
        f"{info.platform} app {info.app_key!r} registered: id {info.id}, "
        f"secret fingerprint {info.fingerprint}{extras}"
    )


@apps_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def apps_list_cmd(as_json: bool) -> None:
    """Registered apps: key, secret fingerprint, active, created. Never a secret."""
    from fulfil.intake import credentials
    from fulfil.pii import Sealer

    with db.session_scope() as session:
        infos = credentials.list_apps(session, Sealer(settings.get().pii_key))
    if as_json:
        click.echo(json.dumps({"apps": [i.as_json() for i in infos]}))
        return
    table = Table("id", "platform", "app key", "fingerprint", "active", "merchant", "extras", "created (UTC)")
    for i in infos:
        extras = "<does not open with this key>" if i.extra_keys is None else ", ".join(i.extra_keys)
        table.add_row(
            str(i.id),
            i.platform,
            i.app_key,
            i.fingerprint,
            "yes" if i.active else "no",
            i.merchant or "—",
            extras or "—",
            i.created_at.isoformat(sep=" ", timespec="seconds"),
        )
    Console().print(table)  # stdout: the table is the command's output


@apps_group.command("deactivate")
@click.argument("app_id", type=int, required=False)
@click.option("--platform", help="With --app-key and --fingerprint instead of an id.")
@click.option("--app-key")
@click.option("--fingerprint", help="The secret's fingerprint, as `fulfil apps list` shows it.")
def apps_deactivate_cmd(
    app_id: int | None, platform: str | None, app_key: str | None, fingerprint: str | None
) -> None:
    """Retire one secret: by id, or by platform, key and fingerprint."""
    from fulfil.intake import credentials

    named = [v is not None for v in (platform, app_key, fingerprint)]
    if (app_id is not None and any(named)) or (app_id is None and not all(named)):
        raise click.UsageError("give an app id, or all of --platform, --app-key and --fingerprint")
    try:
        with db.session_scope() as session:
            if app_id is None:
                assert platform is not None and app_key is not None and fingerprint is not None
                app_id = credentials.find_app(session, platform, app_key, fingerprint).id
            app = credentials.deactivate_app(session, app_id)
            msg = (
                f"{app.platform.value} app {app.app_key!r} (id {app.id}, fingerprint "
                f"{app.secret_fingerprint}) is inactive"
            )
    except credentials.CredentialError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(msg)


@main.group("inbox")
def inbox_group() -> None:
    """The inbox of platform messages."""


@inbox_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def inbox_stats_cmd(as_json: bool) -> None:
    """Messages per platform and status, and refused (bad signature) pushes per platform."""
    from fulfil.intake import inbox, receivers

    counts = inbox.stats(db.engine())
    rejected: dict[str, int] | None
    try:
        rejected = receivers.rejected_counts(redis_conn.connect())
    except Exception as exc:  # the counts of the database stand on their own
        console.print(f"[yellow]rejected-push counts unavailable[/yellow] ({type(exc).__name__}: {exc})")
        rejected = None
    platforms: dict[str, dict[str, int]] = {}
    statuses: dict[str, int] = {}
    for c in counts:
        platforms.setdefault(c.platform, {})[c.status] = c.count
        statuses[c.status] = statuses.get(c.status, 0) + c.count
    if as_json:
        click.echo(
            json.dumps(
                {
                    "platforms": platforms,
                    "statuses": statuses,
                    "total": sum(statuses.values()),
                    "rejected": rejected,
                }
            )
        )
        return
    columns = ["received", "normalised", "ignored", "exception"]
    table = Table("platform", *columns, "total", "rejected")
    names = sorted(set(platforms) | set(rejected or {}))
    for name in names:
        row = platforms.get(name, {})
        table.add_row(
            name,
            *(str(row.get(col, 0)) for col in columns),
            str(sum(row.values())),
            "?" if rejected is None else str(rejected.get(name, 0)),
        )
    table.add_row(
        "total",
        *(str(statuses.get(col, 0)) for col in columns),
        str(sum(statuses.values())),
        "?" if rejected is None else str(sum(rejected.values())),
        style="bold",
    )
    Console().print(table)
