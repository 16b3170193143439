"""`fulfil bench normalise`: a real burst through the outbox, rq and forked workers, read back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import func, select

import fulfil.cli.bench  # noqa: F401  (registers `fulfil bench`)
from fulfil.cli import main
from fulfil.domain.models import InboxMessage, Order
from tests.conftest import Backend


@pytest.mark.parametrize("listing", ["--listing", "--no-listing"])
def test_bench_normalise_turns_every_message_into_an_order(clean: Backend, listing: str) -> None:
    result = CliRunner().invoke(
        main, ["bench", "normalise", "--orders", "240", "--workers", "2", "--per-push", "40", listing]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["bench"] == "normalise" and record["database"] == clean.name
    assert record["orders"] == 240 and record["workers"] == 2
    assert record["listing"] is (listing == "--listing")
    assert record["statuses"] == {"normalised": 240} and record["failed_jobs"] == 0
    assert record["orders_per_s"] > 0 and record["worker_exit_codes"] == [0]
    with clean.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InboxMessage)).scalar_one() == 240
        assert conn.execute(select(func.count()).select_from(Order)).scalar_one() == 240
    assert Queue("intake", connection=clean.redis).count == 0


def test_bench_normalise_refuses_a_busy_queue(clean: Backend) -> None:
    Queue("intake", connection=clean.redis).enqueue("fulfil.jobs.tasks.run", "normalise_inbox", 1)
    result = CliRunner().invoke(main, ["bench", "normalise", "--orders", "10"])
    assert result.exit_code == 1
    assert "Error: the intake queue already holds 1 job(s)" in result.stderr
