"""Fuzzing the four webhook receivers through the whole app: whatever arrives — forged or correctly signed
garbage, any header casing, any content type, empty or oversized bodies — the answer is never a 5xx, a refusal
writes nothing, and an acknowledgement leaves either whole stored messages (with their one outbox job) or one
whole unparseable row with its reason and exception item. Nothing half-written."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from fulfil.api.app import create_app
from fulfil.db import session_scope
from fulfil.domain.models import ExceptionItem, InboxMessage, OutboxJob
from fulfil.intake import credentials
from fulfil.intake.receivers import MAX_BODY_BYTES, PUSH_PLATFORMS
from fulfil.pii import Sealer
from integrations.base import AppCredential
from integrations.fakes.kuaishou import KuaishouFake
from tests.conftest import Backend

SECRET = "fuzz-secret-0001"
MESSAGE_KEY = base64.b64encode(bytes(range(16))).decode()
CREDENTIALS = {
    "doudian": AppCredential("doudian", "7001234567", SECRET),
    "kuaishou": AppCredential("kuaishou", "ks698620", SECRET, {"message_key": MESSAGE_KEY}),
    "shopify": AppCredential("shopify", "belt-store", SECRET),
    "woocommerce": AppCredential("woocommerce", "ck_belt", SECRET, {"consumer_secret": "cs_belt_api"}),
}
KUAISHOU = KuaishouFake(CREDENTIALS["kuaishou"], sku_codes=["KS-1"], shop_codes=["2201"], seed=1)


@dataclass(frozen=True)
class Snapshot:
    max_inbox_id: int
    inbox: int
    exceptions: int
    outbox: int


def snapshot(b: Backend) -> Snapshot:
    with b.engine.connect() as conn:
        return Snapshot(
            conn.execute(select(func.coalesce(func.max(InboxMessage.id), 0))).scalar_one(),
            conn.execute(select(func.count()).select_from(InboxMessage)).scalar_one(),
            conn.execute(select(func.count()).select_from(ExceptionItem)).scalar_one(),
            conn.execute(select(func.count()).select_from(OutboxJob)).scalar_one(),
        )


def new_rows(b: Backend, after: int) -> list[tuple[str, str, str | None, bytes]]:
    with b.engine.connect() as conn:
        return [
            (str(s), t, r, bytes(raw))
            for s, t, r, raw in conn.execute(
                select(InboxMessage.status, InboxMessage.topic, InboxMessage.reason, InboxMessage.raw)
                .where(InboxMessage.id > after)
                .order_by(InboxMessage.id)
            )
        ]


def assert_whole(b: Backend, before: Snapshot, status: int, body: bytes) -> None:
    """The invariant every answer must keep (see the module docstring)."""
    assert status < 500, status
    after = snapshot(b)
    if not 200 <= status < 300:
        assert after == before, f"a {status} refusal wrote something"
        return
    rows = new_rows(b, before.max_inbox_id)
    assert after.inbox - before.inbox == len(rows)
    if any(topic == "unparseable" for _, topic, _, _ in rows):
        # Kept whole: one row holding exactly the body, its reason, one exception item, no job.
        ((state, _, reason, raw),) = rows
        assert state == "exception" and reason and raw == body
        assert (after.exceptions - before.exceptions, after.outbox - before.outbox) == (1, 0)
        return
    received = [r for r in rows if r[0] == "received"]
    kept = [r for r in rows if r[0] == "exception"]
    assert len(received) + len(kept) == len(rows), rows
    assert all(reason for _, _, reason, _ in kept)
    assert after.exceptions - before.exceptions == len(kept)
    # All the push's new messages travel in one job; a push with nothing new writes no job.
    assert after.outbox - before.outbox == (1 if received else 0)


def sign(platform: str, body: bytes) -> dict[str, str]:
    """Headers that make ``body`` correctly signed, computed from the published formulas."""
    cred = CREDENTIALS[platform]
    if platform == "doudian":
        sign_ = hashlib.md5(cred.app_key.encode() + body + cred.secret.encode()).hexdigest()
        return {"app-id": cred.app_key, "event-sign": sign_}
    digest = base64.b64encode(hmac.new(cred.secret.encode(), body, hashlib.sha256).digest()).decode()
    if platform == "shopify":
        return {
            "X-Shopify-Hmac-SHA256": digest,
            "X-Shopify-Topic": "orders/paid",
            "X-Shopify-Webhook-Id": "w",
        }
    if platform == "woocommerce":
        return {
            "X-WC-Webhook-Signature": digest,
            "X-WC-Webhook-Topic": "order.updated",
            "X-WC-Webhook-Delivery-ID": "d",
        }
    raise AssertionError(platform)


@pytest.fixture
def app(clean: Backend) -> Iterator[TestClient[Litestar]]:
    credentials.invalidate_cache()
    with session_scope(clean.engine) as s:
        for cred in CREDENTIALS.values():
            credentials.register_app(
                s,
                Sealer(clean.settings.pii_key),
                cred.platform,
                cred.app_key,
                cred.secret,
                extra=dict(cred.extra),
            )
    with TestClient(create_app(clean.settings)) as c:
        yield c
    credentials.invalidate_cache()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
# Shapes near what the platforms send, so fuzzing reaches the parsers and the inbox, not only verify().
_doudian_like = st.lists(
    st.fixed_dictionaries(
        {"tag": st.sampled_from(["100", "101", "105", "0", "x"]) | st.text(max_size=4), "msg_id": _json},
        optional={"data": _json.map(json.dumps) | _json},
    ),
    max_size=4,
).map(lambda v: json.dumps(v).encode())
_shop_like = st.dictionaries(
    st.sampled_from(["id", "name", "line_items", "status", "number", "financial_status", "date_created"]),
    _json,
    max_size=5,
).map(lambda v: json.dumps(v).encode())
_bodies = st.binary(max_size=400) | _json.map(lambda v: json.dumps(v).encode()) | _doudian_like | _shop_like
_header_names = st.sampled_from(
    [
        "app-id",
        "event-sign",
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-webhook-id",
        "x-wc-webhook-signature",
        "x-wc-webhook-topic",
        "x-wc-webhook-source",
        "x-wc-webhook-delivery-id",
        "content-encoding",
    ]
)
_header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=gbk",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "image/png",
        "",
    ]
)


def recase(headers: dict[str, str], flips: list[bool]) -> dict[str, str]:
    """The same headers with each name's letters upper- or lower-cased by ``flips`` (cycled)."""
    out: dict[str, str] = {}
    for n, (name, value) in enumerate(headers.items()):
        cased = "".join(
            ch.upper() if flips and flips[(n + i) % len(flips)] else ch.lower() for i, ch in enumerate(name)
        )
        out[cased] = value
    return out


def kuaishou_body(event: Any) -> bytes:
    """An arbitrary event encrypted with our message key and carrying our appKey: a genuine push."""
    if isinstance(event, dict):
        event = {**event, "appKey": CREDENTIALS["kuaishou"].app_key}
    return KUAISHOU.encrypt(json.dumps(event).encode())


@hypothesis.settings(
    max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(
    platform=st.sampled_from(PUSH_PLATFORMS),
    body=_bodies,
    event=st.dictionaries(
        st.sampled_from(["eventId", "bizId", "event", "info", "createTime", "test", "userId"]),
        _json,
        max_size=6,
    ),
    headers=st.dictionaries(_header_names, _header_values, max_size=4),
    signed=st.booleans(),
    flips=st.lists(st.booleans(), max_size=8),
    content_type=_content_types,
)
def test_fuzzed_pushes_never_get_a_5xx_nor_half_a_write(
    clean: Backend,
    app: TestClient[Litestar],
    platform: str,
    body: bytes,
    event: dict[str, Any],
    headers: dict[str, str],
    signed: bool,
    flips: list[bool],
    content_type: str | None,
) -> None:
    if signed:
        if platform == "kuaishou":
            body = kuaishou_body(event)
        else:
            signature = sign(platform, body)
            # One value per header: a fuzzed duplicate of a signature header in another casing is a
            # different (ambiguous) request, refused, and not what this case is about.
            taken = {name.lower() for name in signature}
            headers = {**{k: v for k, v in headers.items() if k.lower() not in taken}, **signature}
    if content_type is not None:
        headers = {**headers, "content-type": content_type}
    headers = recase(headers, flips)
    before = snapshot(clean)
    r = app.post(f"/webhooks/{platform}", content=body, headers=headers)
    assert_whole(clean, before, r.status_code, body)
    if signed and platform != "kuaishou":
        # Correctly signed: never refused for its signature, whatever the casing of the headers.
        assert r.status_code == 200, (r.status_code, r.text)
    # The very same delivery again writes nothing at all.
    again = snapshot(clean)
    r2 = app.post(f"/webhooks/{platform}", content=body, headers=headers)
    assert r2.status_code == r.status_code
    assert snapshot(clean) == again


@pytest.mark.parametrize("platform", PUSH_PLATFORMS)
@pytest.mark.parametrize("size", [0, 1, MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES])
def test_empty_and_huge_bodies_are_answered_without_a_5xx(
    clean: Backend, app: TestClient[Litestar], platform: str, size: int
) -> None:
    body = b"[" * size
    if platform == "kuaishou":
        headers: dict[str, str] = {}
        if size:
            body = kuaishou_body({"eventId": "e", "info": "x" * size})
    else:
        headers = sign(platform, body)
    before = snapshot(clean)
    r = app.post(f"/webhooks/{platform}", content=body, headers=headers)
    assert_whole(clean, before, r.status_code, body)
    if len(body) > MAX_BODY_BYTES:
        assert r.status_code == 413, r.status_code
    if size == 0:
        assert r.status_code in (200, 401)


def test_a_signed_huge_push_just_under_the_limit_is_kept_whole(
    clean: Backend, app: TestClient[Litestar]
) -> None:
    body = b"x" * (MAX_BODY_BYTES - 10)  # signed, not JSON: one unparseable row holding every byte
    before = snapshot(clean)
    r = app.post("/webhooks/doudian", content=body, headers=sign("doudian", body))
    assert r.status_code == 200, r.text
    assert_whole(clean, before, r.status_code, body)
    assert snapshot(clean).inbox == before.inbox + 1
