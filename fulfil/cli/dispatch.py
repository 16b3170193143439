"""Dispatch: ``fulfil couriers add-account`` and ``fulfil dispatch run``."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

from fulfil import db, settings
from fulfil.cli import console, main
from fulfil.cli.intake import _extras


@main.group("couriers")
def couriers_group() -> None:
    """Accounts with the couriers' APIs (and Cainiao's), secrets sealed."""


@couriers_group.command("add-account")
@click.argument("api")
@click.option(
    "--app-key", required=True, help="partnerID (SF), x-appKey (ZTO), app-key, app_key, or Cainiao's."
)
@click.option("--secret", required=True, help="The signing key; '-' reads it from stdin.")
@click.option("--base-url", help="The API's base URL (default: the courier's production host).")
@click.option(
    "--extra",
    "extra_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="What else the adapter needs, sealed with the secret (repeatable): monthly_card, access_token ...",
)
def add_account_cmd(
    api: str, app_key: str, secret: str, base_url: str | None, extra_pairs: tuple[str, ...]
) -> None:
    """Register an account with API (ZTO, SF, JD, YUNDA, YTO or CAINIAO)."""
    from fulfil.dispatch import accounts
    from fulfil.pii import Sealer

    extra = _extras(extra_pairs)
    if secret == "-":
        secret = sys.stdin.readline().rstrip("\r\n")
    try:
        with db.session_scope() as session:
            account = accounts.add_account(
                session, Sealer(settings.get().pii_key), api, app_key, secret, extra, base_url
            )
            console.print(f"{account.courier} account {account.app_key!r} registered: id {account.id}")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.group("dispatch")
def dispatch_group() -> None:
    """Couriers, waybills and pickups for packed parcels."""


@dispatch_group.command("run")
@click.option(
    "--day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The belt's day (default: today, belt time). Parcels packed by then are dispatched.",
)
def run_cmd(day: dt.datetime | None) -> None:
    """Assign couriers to the packed parcels and schedule pickups for those with waybills; the waybill and
    booking requests go out through the workers' dispatch queue. Prints one JSON summary."""
    from dataclasses import asdict

    from fulfil.dispatch.assign import assign_couriers
    from fulfil.dispatch.due import belt_day
    from fulfil.dispatch.pickups import schedule_pickups

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    the_day = day.date() if day is not None else belt_day(now)
    with db.session_scope() as session:
        assigned = assign_couriers(session, the_day, now=now)
    with db.session_scope() as session:
        pickups = schedule_pickups(session, the_day, now=now)
    click.echo(json.dumps({"assign": asdict(assigned), "pickups": asdict(pickups)}, default=str))
