"""The load simulator against a real ``fulfil serve``: every signed push acknowledged and stored once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from fulfil.cli import main, simulate
from fulfil.domain.models import InboxMessage, Platform, PlatformShop, PlatformSkuMapping
from fulfil.intake import loadgen
from fulfil.pii import Sealer
from tests.conftest import Backend
from tests.test_api import FULFIL, free_port


@pytest.fixture
def server(backend: Backend, clean: None) -> Iterator[str]:
    env = {**os.environ, **backend.env}
    if backend.name == "sqlite":
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    port = free_port()
    proc = subprocess.Popen(
        [str(FULFIL), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fulfil serve did not start listening within 60 s"
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert "Traceback" not in output, output


def _inbox(backend: Backend, platform: str) -> int:
    with backend.engine.connect() as c:
        return int(
            c.scalar(
                select(func.count())
                .select_from(InboxMessage)
                .where(InboxMessage.platform == Platform(platform))
            )
            or 0
        )


@pytest.mark.slow
def test_simulate_cli_sets_up_and_every_push_is_acknowledged_and_stored(
    backend: Backend, server: str
) -> None:
    assert simulate.simulate_cmd.name in main.commands  # registered on import
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "simulate",
            "--url",
            server,
            "--rate",
            "40",
            "--seconds",
            "2",
            "--per-push",
            "5",
            "--seed",
            "7",
            "--concurrency",
            "3",
            "--setup",
        ],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["statuses"] == {"200": result["pushes"]}
    assert result["failed"] == 0
    assert 60 <= result["sent"] <= 80  # 40 orders/s for 2 s, in pushes of 5
    assert result["acknowledged"] == result["sent"]
    assert result["p50_ms"] is not None and result["p50_ms"] <= result["p99_ms"]
    assert _inbox(backend, "doudian") == result["sent"]
    with backend.engine.connect() as c:
        shops = c.scalar(select(func.count()).select_from(PlatformShop)) or 0
        maps = c.scalar(select(func.count()).select_from(PlatformSkuMapping)) or 0
    assert shops == len(loadgen.DEFAULT_SHOPS["doudian"])
    assert maps == shops * len(loadgen.DEFAULT_SKUS)


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["kuaishou", "shopify", "woocommerce"])
def test_one_message_platforms_are_signed_as_the_server_expects(
    backend: Backend, server: str, platform: str
) -> None:
    credential = loadgen.default_credential(platform)
    loadgen.setup(backend.engine, Sealer(backend.settings.pii_key), credential)
    fake = loadgen.make_fake(credential, seed=3)
    result = loadgen.simulate(server, fake, seconds=1.0, rate=20, per_push=1, concurrency=2).as_json()
    assert result["failed"] == 0, result
    assert 15 <= result["acknowledged"] == result["sent"] <= 20
    assert _inbox(backend, platform) == result["sent"]


@pytest.mark.slow
def test_a_wrong_secret_is_refused_and_nothing_stored(backend: Backend, server: str) -> None:
    loadgen.setup(backend.engine, Sealer(backend.settings.pii_key), loadgen.default_credential("doudian"))
    forged = loadgen.default_credential("doudian", app_secret="not-the-registered-one")
    fake = loadgen.make_fake(forged, seed=5)
    result = loadgen.simulate(server, fake, seconds=0.5, rate=20, per_push=2, concurrency=1).as_json()
    assert result["acknowledged"] == 0
    assert result["failed"] == result["sent"] > 0
    assert set(result["statuses"]) == {"401"}
    assert _inbox(backend, "doudian") == 0


def test_per_push_beyond_the_platform_limit_is_refused() -> None:
    fake = loadgen.make_fake(loadgen.default_credential("shopify"))
    with pytest.raises(ValueError, match="shopify pushes carry 1 to 1"):
        loadgen.simulate("http://127.0.0.1:9", fake, seconds=1, per_push=2)
    assert loadgen.webhook_url("http://h:1/", "doudian") == "http://h:1/webhooks/doudian"
