"""``fulfil simulate``: signed platform pushes at a rate against a running API (see loadgen)."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import click

from fulfil import db, settings
from fulfil.cli import console, main
from fulfil.intake import loadgen
from fulfil.pii import Sealer


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--url")
    return url


@main.command("simulate")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Base URL of the API.")
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="Orders per second (default: full speed)."
)
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--platform", default="doudian", show_default=True, type=click.Choice(sorted(loadgen.FAKES)))
@click.option(
    "--per-push", default=1, show_default=True, type=click.IntRange(min=1), help="Messages per push."
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="Connections.")
@click.option("--app-key", help="The app key the server has registered (default sim-PLATFORM).")
@click.option("--app-secret", help="Its secret (default a fixed simulator secret).")
@click.option("--shop", "shops", multiple=True, help="A registered shop code (repeatable).")
@click.option("--seed", type=int, help="Seed of the fake (default: from the clock, so message ids are new).")
@click.option("--setup", is_flag=True, help="First register the app, a merchant, shops and SKU mappings.")
def simulate_cmd(
    url: str,
    rate: float | None,
    seconds: float,
    platform: str,
    per_push: int,
    concurrency: int,
    app_key: str | None,
    app_secret: str | None,
    shops: tuple[str, ...],
    seed: int | None,
    setup: bool,
) -> None:
    """Push correctly signed orders to URL/webhooks/PLATFORM; print one JSON line with the outcome."""
    check_url(url)
    credential = loadgen.default_credential(platform, app_key, app_secret)
    shop_codes = list(shops) or None
    if setup:
        s = settings.get()
        done = loadgen.setup(db.engine(s.database_url), Sealer(s.pii_key), credential, shop_codes=shop_codes)
        console.print(f"simulator set up: {done}")
    fake = loadgen.make_fake(
        credential, shop_codes=shop_codes, seed=time.time_ns() % 1_000_000 if seed is None else seed
    )
    try:
        result = loadgen.simulate(
            url, fake, seconds=seconds, rate=rate, per_push=per_push, concurrency=concurrency
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(result.as_json(), ensure_ascii=False))
