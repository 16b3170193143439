"""Webhook receivers: verify over the raw bytes, store once, commit, then answer the platform's own contract.

The behaviour common to every platform is tested here with a small adapter of the test's own (HMAC-SHA256 of
the body, hex, in ``x-sign``); the real adapters, driven by their fakes, are tested at the end.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from fulfil.api.app import create_app
from fulfil.db import session_scope
from fulfil.domain.models import ExceptionItem, InboxMessage, OutboxJob, PlatformApp
from fulfil.intake import credentials, inbox, receivers
from fulfil.intake.receivers import MAX_BODY_BYTES, RejectionCounter, rejected_key
from fulfil.pii import Sealer
from integrations.base import (
    AppCredential,
    HttpAnswer,
    PayloadError,
    PushEvent,
    PushMessage,
    SignatureError,
)
from integrations.fakes import FakePlatform
from integrations.signing import header
from tests.conftest import Backend

SECRET = "tiny-secret-0123456789"
SECRET2 = "tiny-secret-rotated-9876"
KEY = "app-1"
OK = HttpAnswer(200, b'{"ok":1}', "application/json")


class TinyPush:
    """A push adapter of this test: ``x-app`` names the key, ``x-sign`` = hex HMAC-SHA256(secret, body)."""

    def __init__(self, platform: str, engine: Any = None) -> None:
        self.platform = platform
        self.engine = engine
        self.visible_at_answer: list[int] = []  # inbox rows another connection saw when the answer was built
        self.verify_error: Exception | None = None
        self.parse_error: Exception | None = None

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        if self.verify_error is not None:
            raise self.verify_error
        key, sign = header(headers, "x-app"), header(headers, "x-sign")
        if not key or not sign:
            raise SignatureError("missing x-app or x-sign")
        for c in credentials:
            expected = hmac.new(c.secret.encode(), body, hashlib.sha256).hexdigest()
            if c.app_key == key and hmac.compare_digest(expected, sign):
                return c
        raise SignatureError(f"x-sign does not match app {key}")

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        if self.parse_error is not None:
            raise self.parse_error
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise PayloadError(f"not JSON: {exc}") from None
        if doc.get("test"):
            return [PushMessage(self.platform, "hb", "test", PushEvent.HEARTBEAT, None, None, None, body)]
        if "messages" not in doc:
            err = PayloadError("no messages")
            err.message_id = doc.get("id")  # type: ignore[attr-defined]
            raise err
        return [
            PushMessage(
                self.platform,
                m["id"],
                "order",
                PushEvent.PAID,
                "shop-1",
                m["order"],
                None,
                json.dumps(m).encode(),
            )
            for m in doc["messages"]
        ]

    def success(self) -> HttpAnswer:
        if self.engine is not None:
            with self.engine.connect() as conn:  # another connection than the receiver's
                self.visible_at_answer.append(
                    conn.execute(select(func.count()).select_from(InboxMessage)).scalar_one()
                )
        return OK

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        return header(headers, "x-sign") is None and body.startswith(b"webhook_id=")


def signed(body: bytes, secret: str = SECRET, key: str = KEY) -> dict[str, str]:
    return {
        "x-app": key,
        "x-sign": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "content-type": "application/json",
    }


def push_body(*ids: str) -> bytes:
    return json.dumps({"messages": [{"id": i, "order": f"o-{i}"} for i in ids]}).encode()


@pytest.fixture
def tiny(clean: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, TinyPush]]:
    adapters = {p: TinyPush(p, clean.engine) for p in receivers.PUSH_PLATFORMS}
    monkeypatch.setattr(receivers, "load_push_adapter", adapters.__getitem__)
    credentials.invalidate_cache()
    with session_scope(clean.engine) as s:
        for p in receivers.PUSH_PLATFORMS:
            credentials.register_app(s, Sealer(clean.settings.pii_key), p, KEY, SECRET)
    yield adapters
    credentials.invalidate_cache()


@pytest.fixture
def client(clean: Backend, tiny: dict[str, TinyPush]) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(clean.settings)) as c:
        yield c


def counts(b: Backend) -> tuple[int, int, int]:
    with b.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(InboxMessage)).scalar_one(),
            conn.execute(select(func.count()).select_from(OutboxJob)).scalar_one(),
            conn.execute(select(func.count()).select_from(ExceptionItem)).scalar_one(),
        )


# ---- the happy path, and the same push again ------------------------------------------------------------


@pytest.mark.parametrize("platform", receivers.PUSH_PLATFORMS)
def test_a_signed_push_is_committed_before_the_answer(
    clean: Backend, tiny: dict[str, TinyPush], client: TestClient[Litestar], platform: str
) -> None:
    body = push_body("m1", "m2", "m3")
    r = client.post(f"/webhooks/{platform}", content=body, headers=signed(body))
    assert r.status_code == 200 and r.content == OK.body
    assert r.headers["content-type"].startswith("application/json")
    # When the adapter built the answer, another connection already saw the three rows: committed first.
    assert tiny[platform].visible_at_answer == [3]
    with clean.engine.connect() as conn:
        rows = conn.execute(
            select(InboxMessage.id, InboxMessage.platform, InboxMessage.message_id, InboxMessage.app_key)
        ).all()
    assert [(p, m, k) for _, p, m, k in rows] == [(platform, f"m{i}", KEY) for i in (1, 2, 3)]
    # The normalise job, ids only, reached rq (after the commit: the outbox drains on commit).
    queue = Queue("intake", connection=clean.redis)
    assert queue.count == 1
    job = queue.fetch_job(queue.job_ids[0])
    assert job is not None and job.args == ("normalise_inbox", *(i for i, *_ in rows))


def test_a_duplicate_delivery_gets_the_same_answer_and_writes_nothing(
    clean: Backend, client: TestClient[Litestar]
) -> None:
    body = push_body("m1", "m2")
    first = client.post("/webhooks/doudian", content=body, headers=signed(body))
    before = counts(clean)
    again = client.post("/webhooks/doudian", content=body, headers=signed(body))
    assert (again.status_code, again.content) == (first.status_code, first.content) == (200, OK.body)
    assert counts(clean) == before == (2, 1, 0)
    assert Queue("intake", connection=clean.redis).count == 1


# ---- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        signed(push_body("m1"), secret="not-the-secret"),
        signed(push_body("m1"), key="another-app"),
        {"content-type": "application/json"},
        signed(push_body("m1", "tampered")),
    ],
    ids=["wrong-secret", "unknown-app", "unsigned", "tampered-body"],
)
def test_a_bad_signature_is_401_writes_nothing_and_is_counted(
    clean: Backend, client: TestClient[Litestar], headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    body = push_body("m1")
    with caplog.at_level(logging.DEBUG):
        r = client.post("/webhooks/shopify", content=body, headers=headers)
    assert r.status_code == 401
    error = r.json()["error"]
    assert (error["status"], error["code"]) == (401, "bad_signature")
    assert counts(clean) == (0, 0, 0)
    assert clean.redis.get(rejected_key("shopify")) == b"1"
    assert "webhook shopify: push rejected" in caplog.text
    assert '"m1"' not in caplog.text and SECRET not in caplog.text  # neither body nor secret in the log


def test_a_body_over_1_mb_is_413_before_anything_else(clean: Backend, client: TestClient[Litestar]) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    r = client.post("/webhooks/doudian", content=big, headers=signed(big))
    assert r.status_code == 413 and r.json()["error"]["status"] == 413
    # Without a Content-Length (chunked), the bounded read still stops it.
    r = client.post("/webhooks/doudian", content=iter([b"x" * 600_000, b"x" * 600_000]))
    assert r.status_code == 413
    # Exactly 1 MB is read and verified (and, unsigned, refused as such).
    exact = b"x" * MAX_BODY_BYTES
    assert client.post("/webhooks/doudian", content=exact).status_code == 401
    assert counts(clean) == (0, 0, 0)


def test_an_adapter_fault_on_forged_input_is_a_refusal_not_a_5xx(
    clean: Backend, tiny: dict[str, TinyPush], client: TestClient[Litestar]
) -> None:
    tiny["kuaishou"].verify_error = IndexError("adapter bug")
    body = push_body("m1")
    r = client.post("/webhooks/kuaishou", content=body, headers=signed(body))
    assert r.status_code == 401 and counts(clean) == (0, 0, 0)


# ---- signed but not understood -----------------------------------------------------------------------------


def test_a_signed_unparseable_push_is_kept_whole_and_acknowledged(
    clean: Backend, client: TestClient[Litestar]
) -> None:
    body = b'{"messages": [{"id": "m1", "order": "o-1"}'  # cut short
    r = client.post("/webhooks/woocommerce", content=body, headers=signed(body))
    assert (r.status_code, r.content) == (200, OK.body)
    with session_scope(clean.engine) as s:
        (row,) = s.scalars(select(InboxMessage)).all()
        (item,) = s.scalars(select(ExceptionItem)).all()
    assert row.raw == body and row.status == "exception" and row.reason and row.reason.startswith("not JSON")
    assert row.message_id == inbox.body_digest(body) and row.app_key == KEY
    assert (item.kind, item.subject) == ("unparseable_push", f"inbox {row.id}")
    # Delivered again: the same answer, nothing more written.
    again = client.post("/webhooks/woocommerce", content=body, headers=signed(body))
    assert (again.status_code, again.content) == (200, OK.body)
    assert counts(clean) == (1, 0, 1)


def test_the_platform_message_id_of_an_unparseable_push_is_its_key(
    clean: Backend, client: TestClient[Litestar]
) -> None:
    body = json.dumps({"id": "wh-77"}).encode()
    assert client.post("/webhooks/shopify", content=body, headers=signed(body)).status_code == 200
    with clean.engine.connect() as conn:
        assert conn.execute(select(InboxMessage.message_id)).scalar_one() == "wh-77"


def test_an_adapter_fault_while_parsing_a_signed_push_keeps_it_whole(
    clean: Backend, tiny: dict[str, TinyPush], client: TestClient[Litestar]
) -> None:
    tiny["doudian"].parse_error = KeyError("p_id")
    body = push_body("m1")
    r = client.post("/webhooks/doudian", content=body, headers=signed(body))
    assert r.status_code == 200
    with clean.engine.connect() as conn:
        raw, reason = conn.execute(select(InboxMessage.raw, InboxMessage.reason)).one()
    assert raw == body and "KeyError" in str(reason)
    assert counts(clean) == (1, 0, 1)


# ---- heartbeat, ping, rotation ---------------------------------------------------------------------------


def test_a_heartbeat_is_answered_and_stores_nothing(clean: Backend, client: TestClient[Litestar]) -> None:
    body = b'{"test": true}'
    r = client.post("/webhooks/kuaishou", content=body, headers=signed(body))
    assert (r.status_code, r.content) == (200, OK.body)
    assert counts(clean) == (0, 0, 0)


def test_an_unsigned_ping_is_answered_without_credentials(
    clean: Backend, client: TestClient[Litestar]
) -> None:
    credentials.invalidate_cache()
    with clean.engine.begin() as conn:  # no app at all: a ping needs none
        conn.exec_driver_sql("DELETE FROM platform_apps")
    r = client.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=12",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert counts(clean) == (0, 0, 0)


def test_both_secrets_of_a_rotation_are_accepted(clean: Backend, client: TestClient[Litestar]) -> None:
    with session_scope(clean.engine) as s:
        new = credentials.register_app(s, Sealer(clean.settings.pii_key), "doudian", KEY, SECRET2)
    old_body, new_body = push_body("old"), push_body("new")
    assert client.post("/webhooks/doudian", content=old_body, headers=signed(old_body)).status_code == 200
    assert (
        client.post("/webhooks/doudian", content=new_body, headers=signed(new_body, SECRET2)).status_code
        == 200
    )
    with session_scope(clean.engine) as s:
        old_id = s.scalars(
            select(PlatformApp.id).where(PlatformApp.platform == "doudian", PlatformApp.id != new.id)
        ).one()
        credentials.deactivate_app(s, old_id)
    late = push_body("late")
    assert client.post("/webhooks/doudian", content=late, headers=signed(late)).status_code == 401
    assert counts(clean)[0] == 2


# ---- the database away -----------------------------------------------------------------------------------


def test_an_unreachable_database_is_503_and_nothing_is_acknowledged(backend: Backend) -> None:
    credentials.invalidate_cache()
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    with TestClient(create_app(dataclasses.replace(backend.settings, database_url=url))) as c:
        body = push_body("m1")
        r = c.post("/webhooks/doudian", content=body, headers=signed(body))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"]["code"] == "service_unavailable"


def test_a_database_failure_while_storing_is_503(
    clean: Backend, client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_a: object, **_k: object) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(inbox, "store_pushes", down)
    body = push_body("m1")
    r = client.post("/webhooks/doudian", content=body, headers=signed(body))
    assert r.status_code == 503 and counts(clean) == (0, 0, 0)


# ---- secrets ---------------------------------------------------------------------------------------------


def test_secrets_never_reach_logs_or_responses(
    clean: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "never-log-this-secret-4711"
    adapter = TinyPush("doudian")
    monkeypatch.setattr(receivers, "load_push_adapter", lambda _p: adapter)
    credentials.invalidate_cache()
    with caplog.at_level(logging.DEBUG):
        with session_scope(clean.engine) as s:
            credentials.register_app(
                s, Sealer(clean.settings.pii_key), "doudian", "k", secret, extra={"t": secret}
            )
        responses = []
        with TestClient(create_app(clean.settings)) as c:
            good = push_body("a")
            responses.append(c.post("/webhooks/doudian", content=good, headers=signed(good, secret, "k")))
            responses.append(c.post("/webhooks/doudian", content=good, headers=signed(good, "nope", "k")))
            bad = b"{broken"
            responses.append(c.post("/webhooks/doudian", content=bad, headers=signed(bad, secret, "k")))
            adapter.verify_error = RuntimeError(f"adapter leaked {secret}")  # even a careless adapter message
            responses.append(c.post("/webhooks/doudian", content=good, headers=signed(good, secret, "k")))
    assert [r.status_code for r in responses] == [200, 401, 200, 401]
    assert caplog.records, "nothing was logged at all: the check below would prove nothing"
    for r in responses:
        assert secret not in r.text
    assert "verify failed unexpectedly" in caplog.text and "RuntimeError: adapter leaked ***" in caplog.text
    assert secret not in caplog.text
    with clean.engine.connect() as conn:
        assert all(
            secret not in (reason or "") for reason in conn.execute(select(InboxMessage.reason)).scalars()
        )
    credentials.invalidate_cache()


# ---- the rejection counter ---------------------------------------------------------------------------------


def test_the_rejection_counter_never_waits_on_a_missing_redis(clean: Backend) -> None:
    now = [0.0]
    calls = [0]
    up = [False]

    def connect() -> Any:
        calls[0] += 1
        if not up[0]:
            raise ConnectionError("redis is away")
        return clean.redis

    counter = RejectionCounter(connect, clock=lambda: now[0], backoff=10)
    counter.add("doudian")
    counter.add("doudian")  # within the backoff: Redis is not tried again
    assert calls[0] == 1 and counter.pending == {"doudian": 2}
    up[0] = True
    now[0] = 11
    counter.add("kuaishou")
    assert counter.pending == {}
    assert receivers.rejected_counts(clean.redis) == {"doudian": 2, "kuaishou": 1}


# ---- the real adapters, driven by their fakes ------------------------------------------------------------

MESSAGE_KEY = base64.b64encode(bytes(range(16))).decode()  # Kuaishou's AES message key


def real_fake(platform: str, secret: str = SECRET, seed: int = 1) -> FakePlatform:
    """A fake platform whose pushes are signed (or encrypted) with ``secret``."""
    if platform == "doudian":
        from integrations.fakes.doudian import DoudianFake

        cred = AppCredential("doudian", "7001234567", secret)
        return DoudianFake(cred, sku_codes=["DD-1", "DD-2"], shop_codes=["4463798"], seed=seed)
    if platform == "kuaishou":
        from integrations.fakes.kuaishou import KuaishouFake

        cred = AppCredential("kuaishou", "ks698620", secret, {"message_key": MESSAGE_KEY})
        return KuaishouFake(cred, sku_codes=["KS-1"], shop_codes=["2201"], seed=seed)
    if platform == "shopify":
        from integrations.fakes.shopify import ShopifyFake

        cred = AppCredential("shopify", "belt-store", secret)
        return ShopifyFake(cred, sku_codes=["SH-1"], shop_codes=["belt-store.myshopify.com"], seed=seed)
    if platform == "woocommerce":
        from integrations.fakes.woocommerce import WooCommerceFake

        cred = AppCredential("woocommerce", "ck_belt", secret, {"consumer_secret": "cs_belt_api"})
        return WooCommerceFake(cred, sku_codes=["WC-1"], shop_codes=["shop.example.com"], seed=seed)
    raise AssertionError(platform)


# The platforms' own success contracts (protocols.md); Shopify and WooCommerce take any 2xx.
CONTRACTS: dict[str, dict[str, Any] | None] = {
    "doudian": {"code": 0, "msg": "success"},
    "kuaishou": {"result": 1},
    "shopify": None,
    "woocommerce": None,
}
REAL_PLATFORMS = sorted(CONTRACTS)


@pytest.fixture
def real(clean: Backend) -> Iterator[TestClient[Litestar]]:
    """The app with the real adapters (nothing patched), every platform's app registered with SECRET."""
    credentials.invalidate_cache()
    with session_scope(clean.engine) as s:
        for p in REAL_PLATFORMS:
            cred = real_fake(p).credential
            credentials.register_app(
                s, Sealer(clean.settings.pii_key), p, cred.app_key, cred.secret, extra=dict(cred.extra)
            )
    with TestClient(create_app(clean.settings)) as c:
        yield c
    credentials.invalidate_cache()


def assert_contract(platform: str, r: Any) -> None:
    assert 200 <= r.status_code < 300, r.text
    expected = CONTRACTS[platform]
    if expected is not None:
        assert r.status_code == 200 and json.loads(r.content) == expected
        assert r.headers["content-type"].startswith("application/json")
    if platform == "doudian":
        assert r.content == b'{"code":0,"msg":"success"}'


def inbox_of(b: Backend) -> list[tuple[str, str | None, str, str]]:
    with b.engine.connect() as conn:
        return [
            (m, o, e, s)
            for m, o, e, s in conn.execute(
                select(
                    InboxMessage.message_id,
                    InboxMessage.platform_order_id,
                    InboxMessage.event,
                    InboxMessage.status,
                ).order_by(InboxMessage.id)
            )
        ]


@pytest.mark.parametrize("platform", REAL_PLATFORMS)
def test_a_real_platform_push_is_stored_and_answered_with_its_contract(
    clean: Backend, real: TestClient[Litestar], platform: str
) -> None:
    fake = real_fake(platform)
    events = fake.create_orders(3)
    pushes = fake.pushes(events)
    for headers, body in pushes:
        assert_contract(platform, real.post(f"/webhooks/{platform}", content=body, headers=headers))
    assert inbox_of(clean) == [(e.message_id, e.order_id, "paid", "received") for e in events]
    assert Queue("intake", connection=clean.redis).count == len(pushes)  # one job per push
    # Every push delivered again: the same answer, nothing written.
    before = counts(clean)
    for headers, body in pushes:
        assert_contract(platform, real.post(f"/webhooks/{platform}", content=body, headers=headers))
    assert counts(clean) == before


@pytest.mark.parametrize("platform", REAL_PLATFORMS)
def test_a_real_platform_push_signed_with_another_secret_is_refused(
    clean: Backend, real: TestClient[Litestar], platform: str
) -> None:
    forger = real_fake(platform, secret="forged-secret-000")
    if platform == "kuaishou":  # no signature: a forger is whoever lacks our message key
        forger = real_fake(platform)
        forger._key = bytes(range(16, 32))  # type: ignore[attr-defined]
    headers, body = forger.push(forger.create_orders(1))
    r = real.post(f"/webhooks/{platform}", content=body, headers=headers)
    assert r.status_code == 401
    assert counts(clean) == (0, 0, 0)
    assert clean.redis.get(rejected_key(platform)) == b"1"


@pytest.mark.parametrize("platform", REAL_PLATFORMS)
def test_a_real_platform_accepts_both_secrets_of_a_rotation(
    clean: Backend, real: TestClient[Litestar], platform: str
) -> None:
    new = real_fake(platform, secret=SECRET2, seed=2)
    with session_scope(clean.engine) as s:
        credentials.register_app(
            s,
            Sealer(clean.settings.pii_key),
            platform,
            new.credential.app_key,
            SECRET2,
            extra=dict(new.credential.extra),
        )
    old = real_fake(platform, seed=1)
    for fake in (old, new):
        headers, body = fake.push(fake.create_orders(1))
        assert_contract(platform, real.post(f"/webhooks/{platform}", content=body, headers=headers))
    assert counts(clean)[0] == 2


def test_the_kuaishou_heartbeat_is_answered_and_stores_nothing(
    clean: Backend, real: TestClient[Litestar]
) -> None:
    fake = real_fake("kuaishou")
    for encrypted in (True, False):
        headers, body = fake.heartbeat(encrypted=encrypted)  # type: ignore[attr-defined]
        assert_contract("kuaishou", real.post("/webhooks/kuaishou", content=body, headers=headers))
    assert counts(clean) == (0, 0, 0)


def test_a_signed_doudian_push_with_a_broken_message_is_kept_whole(
    clean: Backend, real: TestClient[Litestar]
) -> None:
    fake = real_fake("doudian")
    body = b'[{"tag":"101","msg_id":"73001","data":"{not json"}]'
    key, secret = fake.credential.app_key, fake.credential.secret
    headers = {"app-id": key, "event-sign": hashlib.md5(key.encode() + body + secret.encode()).hexdigest()}
    r = real.post("/webhooks/doudian", content=body, headers=headers)
    assert_contract("doudian", r)
    with session_scope(clean.engine) as s:
        (row,) = s.scalars(select(InboxMessage)).all()
        (item,) = s.scalars(select(ExceptionItem)).all()
    assert row.raw == body and row.status == "exception" and "not valid JSON" in (row.reason or "")
    assert item.kind == "unparseable_push"
    assert_contract("doudian", real.post("/webhooks/doudian", content=body, headers=headers))
    assert counts(clean) == (1, 0, 1)


def test_a_big_doudian_push_is_one_insert_and_one_job(clean: Backend, real: TestClient[Litestar]) -> None:
    fake = real_fake("doudian")
    headers, body = fake.push(fake.create_orders(100))
    assert_contract("doudian", real.post("/webhooks/doudian", content=body, headers=headers))
    assert counts(clean) == (100, 1, 0)


def test_the_woocommerce_ping_is_answered_without_a_signature(
    clean: Backend, real: TestClient[Litestar]
) -> None:
    headers, body = real_fake("woocommerce").ping()  # type: ignore[attr-defined]
    assert "X-WC-Webhook-Signature" not in headers
    assert_contract("woocommerce", real.post("/webhooks/woocommerce", content=body, headers=headers))
    assert counts(clean) == (0, 0, 0)
    assert clean.redis.get(rejected_key("woocommerce")) is None


# ---- fuzzing: whatever arrives, never a 5xx and never half a write ----------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_bodies = st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode())
_headers = st.dictionaries(
    st.sampled_from(
        ["app-id", "event-sign", "x-shopify-hmac-sha256", "x-wc-webhook-signature", "x-shopify-topic"]
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
    max_size=3,
)


def sign_for(platform: str, body: bytes, fake: FakePlatform) -> dict[str, str]:
    """Headers that make ``body`` correctly signed for the real adapter (the published formulas)."""
    key, secret = fake.credential.app_key, fake.credential.secret
    if platform == "doudian":
        return {"app-id": key, "event-sign": hashlib.md5(key.encode() + body + secret.encode()).hexdigest()}
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if platform == "shopify":
        return {
            "x-shopify-hmac-sha256": digest,
            "x-shopify-topic": "orders/paid",
            "x-shopify-webhook-id": "w",
        }
    return {
        "x-wc-webhook-signature": digest,
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-delivery-id": "d",
    }


@hypothesis.settings(
    max_examples=40, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(
    platform=st.sampled_from(receivers.PUSH_PLATFORMS), body=_bodies, headers=_headers, signed_=st.booleans()
)
def test_fuzzed_pushes_never_get_a_5xx(
    clean: Backend,
    real: TestClient[Litestar],
    platform: str,
    body: bytes,
    headers: dict[str, str],
    signed_: bool,
) -> None:
    if signed_ and platform != "kuaishou":
        headers = {**headers, **sign_for(platform, body, real_fake(platform))}
    before = counts(clean)
    r = real.post(f"/webhooks/{platform}", content=body, headers=headers)
    assert r.status_code in (200, 401), (r.status_code, r.text)
    inbox_rows, jobs, exceptions = counts(clean)
    if r.status_code == 401:
        assert (inbox_rows, jobs, exceptions) == before  # a refusal writes nothing
    else:
        # Acknowledged: stored as messages (with their job), kept whole as an exception, or nothing new
        # (a ping, a heartbeat, a duplicate).
        assert inbox_rows >= before[0] and exceptions >= before[2]
