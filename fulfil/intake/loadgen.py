"""The load simulator: correctly signed pushes built by the platform fakes, sent to a running API at a rate.

Pushes come from :mod:`integrations.fakes`, so they are signed (or encrypted) exactly as the platform would;
the credential and the shop and SKU codes must be the ones the server has registered, which :func:`setup`
does in the configured database. Traffic goes to one base URL only (``{url}/webhooks/{platform}``) over a
few concurrent keep-alive connections of :mod:`fulfil.intake.loadclient`; the run is bounded by ``seconds``
and no push is started after that. Every push is built and signed before the clock starts, so the load
generator spends its CPU on sending, not on JSON and signatures, while it shares the machine with the server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import resource
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from fulfil import db
from fulfil.domain.models import (
    Merchant,
    Platform,
    PlatformShop,
    PlatformSkuMapping,
    ProcessFamily,
    Sku,
    Style,
)
from fulfil.intake import credentials, loadclient
from fulfil.pii import Sealer
from integrations.base import AppCredential
from integrations.fakes import FakeEvent, FakePlatform, Push
from integrations.fakes.doudian import DoudianFake
from integrations.fakes.kuaishou import KuaishouFake
from integrations.fakes.shopify import ShopifyFake
from integrations.fakes.woocommerce import WooCommerceFake

FAKES: Mapping[str, type[FakePlatform]] = {
    "doudian": DoudianFake,
    "kuaishou": KuaishouFake,
    "shopify": ShopifyFake,
    "woocommerce": WooCommerceFake,
}
# Shop codes in each platform's own form: Kuaishou shop ids are digits, Shopify stores are domains.
DEFAULT_SHOPS: Mapping[str, tuple[str, ...]] = {
    "doudian": ("88990001", "88990002"),
    "kuaishou": ("77120001", "77120002"),
    "shopify": ("yushan-knits.myshopify.com",),
    "woocommerce": ("shop.yushan-knits.example",),
}
DEFAULT_SKUS: tuple[str, ...] = tuple(f"SIM-{i:03d}" for i in range(40))
SIM_MERCHANT = "SIM"
_BATCH = 2000  # events generated at a time: enough to keep the senders busy, small enough to start at once


def default_credential(
    platform: str, app_key: str | None = None, app_secret: str | None = None
) -> AppCredential:
    """The simulator's credential for ``platform``; Kuaishou's message key is derived from the secret."""
    if platform not in FAKES:
        raise ValueError(
            f"the simulator has no fake for platform {platform!r}; choose one of {', '.join(FAKES)}"
        )
    key = app_key or f"sim-{platform}"
    secret = app_secret or f"sim-{platform}-secret-0001"
    extra: dict[str, str] = {}
    if platform in ("doudian", "kuaishou"):  # their order APIs act with the shop's access token
        extra["access_token"] = f"sim-{platform}-token"
    if platform == "kuaishou":
        # A 32-byte AES key stable for a secret: server and simulator agree without a third option.
        extra["message_key"] = base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode()
    return AppCredential(platform, key, secret, extra)


def make_fake(
    credential: AppCredential,
    *,
    shop_codes: Sequence[str] | None = None,
    sku_codes: Sequence[str] = DEFAULT_SKUS,
    seed: int = 0,
) -> FakePlatform:
    cls = FAKES[credential.platform]
    shops = list(shop_codes or DEFAULT_SHOPS[credential.platform])
    return cls(credential, sku_codes=list(sku_codes), shop_codes=shops, seed=seed)


def setup(
    engine: Engine,
    sealer: Sealer,
    credential: AppCredential,
    *,
    shop_codes: Sequence[str] | None = None,
    sku_codes: Sequence[str] = DEFAULT_SKUS,
    merchant_code: str = SIM_MERCHANT,
) -> dict[str, int]:
    """Register the app, a merchant, its shops and SKU mappings, so simulated pushes normalise. Idempotent."""
    plat = Platform(credential.platform)
    shops = list(shop_codes or DEFAULT_SHOPS[credential.platform])
    with db.session_scope(engine) as s:
        mid = s.scalar(select(Merchant.id).where(Merchant.code == merchant_code))
        if mid is None:
            mid = s.execute(
                insert(Merchant)
                .values(code=merchant_code, name="模拟商家", town="虞山", lon=120.75, lat=31.65)
                .returning(Merchant.id)
            ).scalar_one()
        fam = s.scalar(select(ProcessFamily.id).where(ProcessFamily.code == "sew"))
        if fam is None:
            fam = s.execute(
                insert(ProcessFamily).values(code="sew", name="cut and sew").returning(ProcessFamily.id)
            ).scalar_one()
        style_code = f"{merchant_code}-STYLE"
        style = s.scalar(select(Style.id).where(Style.merchant_id == mid, Style.code == style_code))
        if style is None:
            style = s.execute(
                insert(Style)
                .values(
                    merchant_id=mid,
                    code=style_code,
                    name="针织衫",
                    process_family_id=fam,
                    minutes_per_unit=2.0,
                    min_lot=20,
                    changeover_fen=1000,
                )
                .returning(Style.id)
            ).scalar_one()

        def merchants_skus() -> dict[str, int]:
            # codes the merchant already sells (any style) are mapped as they are; only the rest are made
            query = (
                select(Sku.code, Sku.id).join(Style, Style.id == Sku.style_id).where(Style.merchant_id == mid)
            )
            return {str(code): int(i) for code, i in s.execute(query)}

        have = merchants_skus()
        missing = [c for c in sku_codes if c not in have]
        if missing:
            s.execute(
                insert(Sku),
                [
                    {"style_id": style, "code": c, "colour": "黑", "size": "M", "weight_g": 300}
                    for c in missing
                ],
            )
            have = merchants_skus()
        mappings = 0
        for shop_code in shops:
            sid = s.scalar(
                select(PlatformShop.id).where(
                    PlatformShop.platform == plat, PlatformShop.shop_code == shop_code
                )
            )
            if sid is None:
                sid = s.execute(
                    insert(PlatformShop)
                    .values(platform=plat, shop_code=shop_code, name="模拟旗舰店", merchant_id=mid)
                    .returning(PlatformShop.id)
                ).scalar_one()
            mapped = set(
                s.scalars(
                    select(PlatformSkuMapping.platform_sku_code).where(PlatformSkuMapping.shop_id == sid)
                )
            )
            rows = [
                {"shop_id": sid, "platform_sku_code": c, "sku_id": have[c]}
                for c in sku_codes
                if c not in mapped
            ]
            if rows:
                s.execute(insert(PlatformSkuMapping), rows)
            mappings += len(rows)
        app = credentials.register_app(
            s,
            sealer,
            credential.platform,
            credential.app_key,
            credential.secret,
            merchant_code,
            credential.extra,
        )
        return {"app_id": app.id, "merchant_id": mid, "shops": len(shops), "new_sku_mappings": mappings}


@dataclass
class LoadResult:
    platform: str
    per_push: int
    concurrency: int
    rate: float | None
    seconds: float  # wall time from the first push to the last answer
    pushes: int = 0
    sent: int = 0  # orders (messages) in pushes that were sent
    acknowledged: int = 0  # orders in pushes answered 200
    failed: int = 0  # orders in pushes answered otherwise, or not answered
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0  # while sending
    prepare_s: float = 0.0  # building and signing the pushes, before the clock starts
    prepare_cpu_s: float = 0.0
    exhausted: bool = False  # every prepared push was sent before ``seconds`` ran out

    def as_json(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        wall = max(self.seconds, 1e-9)
        return {
            "platform": self.platform,
            "per_push": self.per_push,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "seconds": round(self.seconds, 3),
            "pushes": self.pushes,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "statuses": dict(sorted(self.statuses.items())),
            "orders_per_s": round(self.acknowledged / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
            "exhausted": self.exhausted,
            "prepare_s": round(self.prepare_s, 2),
            "client_cpu_s": round(self.client_cpu_s, 2),
            # Share of one core the simulator itself used: it competes with the server for the machine.
            "client_cpu_share": round(self.client_cpu_s / wall, 3),
        }


def webhook_url(url: str, platform: str) -> str:
    base = url.rstrip("/")
    suffix = f"/webhooks/{platform}"
    return base if base.endswith(suffix) else base + suffix


# Full speed is unknown in advance, so pushes are built for at most this many orders per second; a server
# faster than that ends the run early ("exhausted"), and the rate is still acknowledged orders over wall time.
FULL_SPEED_ORDERS_PER_S = 25_000
FULL_SPEED_PUSHES_PER_S = 5_000


def prepare_pushes(fake: FakePlatform, orders: int, per_push: int) -> list[tuple[int, Push]]:
    """``orders`` new paid orders as pushes of ``per_push`` messages: (messages, push), built before sending
    so that signing and JSON cost the load generator nothing while it measures the server."""
    pushes: list[tuple[int, Push]] = []
    made = 0
    while made < orders:
        events: list[FakeEvent] = fake.create_orders(min(_BATCH, orders - made))
        made += len(events)
        for i in range(0, len(events), per_push):
            chunk = events[i : i + per_push]
            pushes.append((len(chunk), fake.push(chunk)))
    return pushes


def planned_orders(seconds: float, rate: float | None, per_push: int) -> int:
    """How many orders a run can send: ``rate`` × ``seconds``, or the full-speed ceiling."""
    if rate is not None:
        return max(math.ceil(rate * seconds), 1)
    ceiling = min(FULL_SPEED_ORDERS_PER_S, FULL_SPEED_PUSHES_PER_S * per_push)
    return max(math.ceil(ceiling * seconds), per_push)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_load(
    url: str,
    fake: FakePlatform,
    *,
    seconds: float,
    rate: float | None = None,
    per_push: int = 1,
    concurrency: int = 8,
    timeout: float = 30.0,
) -> LoadResult:
    """Send pushes for ``seconds``: ``rate`` orders per second, or as fast as answers come when ``None``."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    limit = fake.max_per_push
    if per_push < 1 or (limit is not None and per_push > limit):
        raise ValueError(
            f"{fake.platform} pushes carry 1 to {limit or 'any number of'} message(s), not {per_push}"
        )
    target = loadclient.Target.parse(webhook_url(url, fake.platform))
    result = LoadResult(fake.platform, per_push, concurrency, rate, 0.0)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    ready = deque(
        (n, loadclient.build_post(target, headers, body))
        for n, (headers, body) in prepare_pushes(fake, planned_orders(seconds, rate, per_push), per_push)
    )
    result.prepare_s = time.perf_counter() - t0
    cpu1 = _cpu()
    result.prepare_cpu_s = cpu1 - cpu0
    await _send(target, ready, result, seconds=seconds, rate=rate, concurrency=concurrency, timeout=timeout)
    result.exhausted = not ready and result.seconds < seconds
    result.client_cpu_s = _cpu() - cpu1
    return result


async def _send(
    target: loadclient.Target,
    ready: deque[tuple[int, bytes]],
    result: LoadResult,
    *,
    seconds: float | None,
    rate: float | None,
    concurrency: int,
    timeout: float,
) -> None:
    """Send the ready pushes over ``concurrency`` connections until none is left or ``seconds`` ran out."""
    per_push = result.per_push
    start = time.perf_counter()
    end = math.inf if seconds is None else start + seconds
    scheduled = 0  # orders handed out so far: the next push is due when the rate allows that many

    async def sender() -> None:
        nonlocal scheduled
        conn = loadclient.Connection(target, timeout)
        try:
            while ready:
                now = time.perf_counter()
                if now >= end:
                    return
                if rate is not None:
                    due = start + scheduled / rate
                    scheduled += per_push
                    if due >= end:
                        return
                    if due > now:
                        await asyncio.sleep(due - now)
                n, request = ready.popleft()
                result.pushes += 1
                result.sent += n
                t = time.perf_counter()
                try:
                    status, _ = await conn.post(request)
                except (OSError, TimeoutError, loadclient.LoadClientError) as exc:
                    result.failed += n
                    result.statuses[type(exc).__name__] += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - t) * 1000.0)
                result.statuses[str(status)] += 1
                if status == 200:
                    result.acknowledged += n
                else:
                    result.failed += n
        finally:
            await conn.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start


def deliver(
    url: str,
    platform: str,
    pushes: Sequence[tuple[int, Push]],
    *,
    concurrency: int = 4,
    timeout: float = 30.0,
) -> LoadResult:
    """Send exactly ``pushes`` ((messages, push) pairs, e.g. from :func:`prepare_pushes`) to the server."""
    target = loadclient.Target.parse(webhook_url(url, platform))
    per_push = max((n for n, _ in pushes), default=1)
    result = LoadResult(platform, per_push, concurrency, None, 0.0)
    ready = deque((n, loadclient.build_post(target, headers, body)) for n, (headers, body) in pushes)
    asyncio.run(
        _send(target, ready, result, seconds=None, rate=None, concurrency=concurrency, timeout=timeout)
    )
    return result


def simulate(
    url: str,
    fake: FakePlatform,
    *,
    seconds: float,
    rate: float | None = None,
    per_push: int = 1,
    concurrency: int = 8,
) -> LoadResult:
    return asyncio.run(
        run_load(url, fake, seconds=seconds, rate=rate, per_push=per_push, concurrency=concurrency)
    )
