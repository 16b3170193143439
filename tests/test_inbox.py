"""The inbox: each message stored once, with one outbox job for the new rows; nothing lost, nothing twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Queue
from rq.job import Job
from sqlalchemy import select

import fulfil.cli.intake  # noqa: F401  (registers `fulfil inbox`)
from fulfil.cli import main
from fulfil.db import session_scope
from fulfil.domain.models import ExceptionItem, InboxMessage, OutboxJob
from fulfil.intake import inbox
from fulfil.intake.inbox import store_push, store_unparseable
from fulfil.intake.receivers import rejected_key
from integrations.base import PushEvent, PushMessage
from tests.conftest import Backend

T = dt.datetime(2026, 11, 23, 12, 0)


def msg(mid: str, order: str = "6900001", event: PushEvent = PushEvent.PAID, **kw: Any) -> PushMessage:
    fields: dict[str, Any] = {
        "platform": "doudian",
        "message_id": mid,
        "topic": "101",
        "event": event,
        "shop_code": "4463798",
        "platform_order_id": order,
        "occurred_at": T,
        "raw": json.dumps({"msg_id": mid, "p_id": order}).encode(),
    } | kw
    return PushMessage(**fields)


def inbox_rows(b: Backend) -> list[dict[str, Any]]:
    with b.engine.connect() as conn:
        result = conn.execute(select(InboxMessage.__table__).order_by(InboxMessage.id))
        return [dict(r._mapping) for r in result]


def outbox_rows(b: Backend) -> list[tuple[str, list[Any]]]:
    with b.engine.connect() as conn:
        return [
            (t, list(a))
            for t, a in conn.execute(select(OutboxJob.task, OutboxJob.args).order_by(OutboxJob.id))
        ]


def exception_rows(b: Backend) -> list[ExceptionItem]:
    with session_scope(b.engine) as s:
        return list(s.scalars(select(ExceptionItem).order_by(ExceptionItem.id)))


def test_a_push_is_stored_with_one_job_that_reaches_rq_after_the_commit(clean: Backend) -> None:
    messages = [msg(f"m{i}", order=f"69{i:05d}") for i in range(100)]
    queue = Queue("intake", connection=clean.redis)
    with session_scope(clean.engine) as s:
        result = store_push(s, "doudian", "7001", messages)
        assert queue.count == 0  # not before the commit
    assert len(result.new_ids) == 100 and result.duplicates == 0
    rows = inbox_rows(clean)
    assert [r["id"] for r in rows] == result.new_ids
    first = rows[0]
    assert (first["platform"], first["message_id"], first["app_key"], first["topic"]) == (
        "doudian",
        "m0",
        "7001",
        "101",
    )
    assert (first["event"], first["shop_code"], first["platform_order_id"]) == ("paid", "4463798", "6900000")
    assert first["occurred_at"] == T and first["status"] == "received" and first["attempts"] == 0
    assert first["raw"] == messages[0].raw
    assert outbox_rows(clean) == [("normalise_inbox", result.new_ids)]
    assert queue.count == 1
    job = Job.fetch(queue.job_ids[0], connection=clean.redis)
    assert job.args == ("normalise_inbox", *result.new_ids)


def test_a_duplicate_push_writes_nothing(clean: Backend) -> None:
    messages = [msg("a"), msg("b")]
    with session_scope(clean.engine) as s:
        store_push(s, "doudian", "7001", messages)
    with session_scope(clean.engine) as s:
        again = store_push(s, "doudian", "7001", messages)
    assert again.new_ids == [] and again.duplicates == 2
    assert len(inbox_rows(clean)) == 2 and len(outbox_rows(clean)) == 1
    # Partly new: only the new message is stored, and only it is in the new job.
    with session_scope(clean.engine) as s:
        mixed = store_push(s, "doudian", "7001", [msg("b"), msg("c"), msg("c")])
    assert len(mixed.new_ids) == 1 and mixed.duplicates == 2
    assert outbox_rows(clean)[-1] == ("normalise_inbox", mixed.new_ids)
    # The same message id on another platform is another message.
    with session_scope(clean.engine) as s:
        other = store_push(s, "kuaishou", "ks", [msg("a", platform="kuaishou")])
    assert len(other.new_ids) == 1


def test_heartbeats_are_not_stored(clean: Backend) -> None:
    with session_scope(clean.engine) as s:
        result = store_push(s, "kuaishou", "ks", [msg("hb", event=PushEvent.HEARTBEAT, platform="kuaishou")])
    assert result.new_ids == [] and inbox_rows(clean) == [] and outbox_rows(clean) == []


def test_a_rolled_back_push_leaves_no_row_and_no_job(clean: Backend) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(clean.engine) as s:
        store_push(s, "doudian", "7001", [msg("a")])
        raise RuntimeError("boom")
    assert inbox_rows(clean) == [] and outbox_rows(clean) == []
    assert Queue("intake", connection=clean.redis).count == 0


def test_a_message_from_another_platform_is_a_programming_error(clean: Backend) -> None:
    with (
        pytest.raises(ValueError, match="a kuaishou message in a doudian push"),
        session_scope(clean.engine) as s,
    ):
        store_push(s, "doudian", "7001", [msg("a", platform="kuaishou")])


def test_what_the_columns_cannot_hold_is_kept_as_an_exception_not_dropped(clean: Backend) -> None:
    long_id = "x" * 300
    with session_scope(clean.engine) as s:
        result = store_push(
            s,
            "doudian",
            "7001",
            [
                msg("ok"),
                msg("long-order", order="9" * 80),
                msg("nul-shop", shop_code="44\x0063"),
                msg(long_id, topic="t" * 100),
                msg("surrogate-order", order="69\ud800", topic="10\ud8001"),
                msg("surrogate-id-\ud800"),
            ],
        )
    rows = {r["message_id"]: r for r in inbox_rows(clean)}
    assert len(rows) == 6 and len(result.new_ids) == 3 and len(result.exception_ids) == 3
    assert rows["long-order"]["status"] == "exception" and "80 characters" in rows["long-order"]["reason"]
    assert rows["long-order"]["raw"] == msg("long-order", order="9" * 80).raw  # kept whole
    assert rows["nul-shop"]["status"] == "exception" and "NUL" in rows["nul-shop"]["reason"]
    assert rows["surrogate-order"]["status"] == "exception" and rows["surrogate-order"]["topic"] == "10?1"
    surrogate_key = (
        "sha256:" + hashlib.sha256("surrogate-id-\ud800".encode("utf-8", "surrogatepass")).hexdigest()
    )
    assert rows[surrogate_key]["status"] == "received"
    digest_id = "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    assert rows[digest_id]["status"] == "received" and len(rows[digest_id]["topic"]) == 64
    assert outbox_rows(clean) == [("normalise_inbox", result.new_ids)]
    items = exception_rows(clean)
    assert [(i.kind, i.subject) for i in items] == [
        ("invalid_message", f"inbox {rows['long-order']['id']}"),
        ("invalid_message", f"inbox {rows['nul-shop']['id']}"),
        ("invalid_message", f"inbox {rows['surrogate-order']['id']}"),
    ]
    # The long id dedupes through its digest.
    with session_scope(clean.engine) as s:
        assert store_push(s, "doudian", "7001", [msg(long_id)]).duplicates == 1


def test_an_unparseable_push_is_kept_whole_with_its_reason(clean: Backend) -> None:
    body = b'[{"tag": "101", "msg_id": "m1", "data": "{not json"}]'
    with session_scope(clean.engine) as s:
        inbox_id = store_unparseable(s, "doudian", "7001", body, "message 0: data is not valid JSON")
    assert inbox_id is not None
    (row,) = inbox_rows(clean)
    assert row["raw"] == body and row["status"] == "exception"
    assert row["reason"] == "message 0: data is not valid JSON"
    assert row["message_id"] == "sha256:" + hashlib.sha256(body).hexdigest()
    (item,) = exception_rows(clean)
    assert (item.kind, item.subject, item.reason) == (
        "unparseable_push",
        f"inbox {inbox_id}",
        "message 0: data is not valid JSON",
    )
    assert item.payload["platform"] == "doudian" and item.payload["bytes"] == len(body)
    assert outbox_rows(clean) == []  # nothing to normalise
    # A retried identical delivery is a duplicate: nothing written.
    with session_scope(clean.engine) as s:
        assert store_unparseable(s, "doudian", "7001", body, "again") is None
    assert len(inbox_rows(clean)) == 1 and len(exception_rows(clean)) == 1
    # With the platform's own id, that id is the key.
    with session_scope(clean.engine) as s:
        assert store_unparseable(s, "shopify", "s", b"{}", "no order", message_id="wh-123") is not None
    assert inbox_rows(clean)[-1]["message_id"] == "wh-123"


def test_concurrent_deliveries_of_one_push_store_it_once(clean: Backend) -> None:
    messages = [msg(f"c{i}") for i in range(50)]
    barrier = threading.Barrier(4)
    results: list[inbox.StoreResult] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            with session_scope(clean.engine) as s:
                results.append(store_push(s, "doudian", "7001", messages))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(r.new_ids) for r in results) == [0, 0, 0, 50]
    assert len(inbox_rows(clean)) == 50 and len(outbox_rows(clean)) == 1


def test_stats_count_per_platform_and_status_and_the_cli_adds_rejections(clean: Backend) -> None:
    with session_scope(clean.engine) as s:
        store_push(s, "doudian", "7001", [msg("a"), msg("b"), msg("c", order="9" * 80)])
        store_push(s, "shopify", "s", [msg("w", platform="shopify")])
        store_unparseable(s, "shopify", "s", b"garbage", "not JSON")
    counts = {(c.platform, c.status): c.count for c in inbox.stats(clean.engine)}
    assert counts == {
        ("doudian", "received"): 2,
        ("doudian", "exception"): 1,
        ("shopify", "received"): 1,
        ("shopify", "exception"): 1,
    }
    clean.redis.set(rejected_key("kuaishou"), 3)
    r = CliRunner().invoke(main, ["inbox", "stats", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        "platforms": {"doudian": {"exception": 1, "received": 2}, "shopify": {"exception": 1, "received": 1}},
        "statuses": {"exception": 2, "received": 3},
        "total": 5,
        "rejected": {"kuaishou": 3},
    }
    table = CliRunner().invoke(main, ["inbox", "stats"])
    assert table.exit_code == 0 and "kuaishou" in table.output and "doudian" in table.output
