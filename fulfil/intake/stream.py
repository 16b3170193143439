"""The demo's live stream: orders placed on the platform fakes reach the belt the way real orders do.

A merchant of the generated belt opens a shop on every platform, its apps registered and its own SKU codes
mapped. In the ten minutes before now its buyers order: Douyin, Kuaishou, Shopify and WooCommerce push signed
messages to a running ``fulfil serve`` (over HTTP, through the receivers, the inbox and the group commit);
Taobao/Tmall, JD and Pinduoduo hold their orders until the ``pull_increments`` job fetches them. The
``normalise_inbox`` jobs then run in this process's own burst worker, so that the platforms' APIs can be the
fakes (:func:`fulfil.intake.platforms.set_http_client_factory`); the planning workers never see them.

Times are real: the stream happens now, which is on the belt's day when the demo runs on today's belt (its
default). The pulled platforms' fakes check each request's timestamp against their clock, as the platforms do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import redis
from rq import Queue, SimpleWorker
from sqlalchemy import Engine, func, select

from fulfil.domain.models import ExceptionItem, InboxMessage, InboxStatus, Merchant, Sku, Style
from fulfil.intake import loadgen, platforms, pulls
from fulfil.jobs import outbox
from fulfil.pii import Sealer
from integrations.base import AppCredential
from integrations.fakes import FakePlatform
from integrations.fakes import jd as jd_fake
from integrations.fakes import pinduoduo as pinduoduo_fake
from integrations.fakes import taobao as taobao_fake
from integrations.fakes.pulled import PulledPlatformFake

# platform -> (orders, messages per push): Douyin batches its pushes, the others send one order each
PUSHED: Mapping[str, tuple[int, int]] = {
    "doudian": (600, 20),
    "kuaishou": (160, 1),
    "shopify": (30, 1),
    "woocommerce": (30, 1),
}
PULLED: Mapping[str, int] = {"taobao": 80, "jd": 50, "pinduoduo": 50}  # orders in the platform's shop
PULLED_FAKES: Mapping[str, type[PulledPlatformFake]] = {
    "taobao": taobao_fake.TaobaoFake,
    "jd": jd_fake.JdFake,
    "pinduoduo": pinduoduo_fake.PinduoduoFake,
}
_CREDENTIALS: Mapping[str, Callable[[str, str, Sequence[str]], AppCredential]] = {
    "taobao": taobao_fake.credential,
    "jd": jd_fake.credential,
    "pinduoduo": pinduoduo_fake.credential,
}
PULLED_SHOPS: Mapping[str, str] = {"taobao": "tb-yushan-knits", "jd": "10086001", "pinduoduo": "880066"}
LEAD = dt.timedelta(minutes=10)  # the stream starts this long before now ...
LENGTH = dt.timedelta(minutes=9)  # ... and lasts this long (pulled orders must be older than the lag)
SKUS = 40  # of the merchant's SKUs, the ones its shops list


class StreamError(RuntimeError):
    """The stream cannot run; the message says why."""


@dataclass
class StreamReport:
    merchant: str = ""
    pushed: dict[str, dict[str, int]] = field(default_factory=dict)  # platform -> sent, acknowledged
    pulled: dict[str, int] = field(default_factory=dict)  # platform -> orders pulled
    inbox: dict[str, int] = field(default_factory=dict)  # status -> messages
    exceptions: dict[str, int] = field(default_factory=dict)  # kind -> open exception items


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _merchant(engine: Engine) -> tuple[str, list[str]]:
    """The belt's merchant with the most SKUs, and the codes of its first :data:`SKUS` SKUs."""
    with engine.connect() as c:
        top = c.execute(
            select(Merchant.id, Merchant.code)
            .join(Style, Style.merchant_id == Merchant.id)
            .join(Sku, Sku.style_id == Style.id)
            .group_by(Merchant.id, Merchant.code)
            .order_by(func.count().desc(), Merchant.id)
            .limit(1)
        ).first()
        if top is None:
            raise StreamError("the belt has no merchant with SKUs: generate the belt first")
        codes = c.execute(
            select(Sku.code)
            .join(Style, Style.id == Sku.style_id)
            .where(Style.merchant_id == top[0])
            .order_by(Sku.id)
            .limit(SKUS)
        ).scalars()
        return str(top[1]), [str(code) for code in codes]


def _pulled_credential(platform: str) -> AppCredential:
    return _CREDENTIALS[platform](f"sim-{platform}", f"sim-{platform}-secret-0001", [PULLED_SHOPS[platform]])


def _pulled_fake(
    platform: str, credential: AppCredential, skus: Sequence[str], seed: int
) -> PulledPlatformFake:
    """The platform's fake with an empty shop and its clock at the start of the stream."""
    fake_class: type[PulledPlatformFake] = PULLED_FAKES[platform]
    return fake_class(
        credential,
        shop_codes=[PULLED_SHOPS[platform]],
        sku_codes=list(skus),
        seed=seed,
        now=_now() - LEAD,
        orders_per_shop=0,
    )


def run(
    engine: Engine,
    connection: redis.Redis,
    sealer: Sealer,
    url: str,
    *,
    seed: int = 1,
    progress: Callable[[str, int, int], None] = lambda _s, _d, _t: None,
) -> StreamReport:
    """Register the shops, send the pushes to ``url``, pull, normalise; what came of it."""
    report = StreamReport()
    report.merchant, skus = _merchant(engine)
    total = sum(n for n, _ in PUSHED.values()) + sum(PULLED.values())
    done = 0

    start = _now() - LEAD
    pushing: dict[str, FakePlatform] = {}
    for platform, (orders, per_push) in PUSHED.items():
        credential = loadgen.default_credential(platform)
        loadgen.setup(engine, sealer, credential, sku_codes=skus, merchant_code=report.merchant)
        fake = loadgen.make_fake(credential, sku_codes=skus, seed=seed)
        fake.now, fake.step = start, LENGTH / orders
        pushing[platform] = fake
        result = loadgen.deliver(url, platform, loadgen.prepare_pushes(fake, orders, per_push))
        report.pushed[platform] = {"sent": result.sent, "acknowledged": result.acknowledged}
        done += orders
        progress("stream", done, total)

    pulling: dict[str, PulledPlatformFake] = {}
    for platform, orders in PULLED.items():
        credential = _pulled_credential(platform)
        loadgen.setup(
            engine,
            sealer,
            credential,
            shop_codes=[PULLED_SHOPS[platform]],
            sku_codes=skus,
            merchant_code=report.merchant,
        )
        book = _pulled_fake(platform, credential, skus, seed)
        for _ in range(orders):
            book.advance(seconds=LENGTH.total_seconds() / orders)
            book.new_order(PULLED_SHOPS[platform], paid=True)
        book.advance(seconds=(_now() - book.now).total_seconds())  # the platform's clock is the real one
        pulling[platform] = book

    def client(platform: str) -> httpx.Client:
        if platform in pulling:
            return pulling[platform].client()
        return httpx.Client(transport=pushing[platform].transport())

    platforms.set_http_client_factory(client)
    try:
        for platform in PULLED:
            summary = pulls.pull_increments(platform, PULLED_SHOPS[platform])
            report.pulled[platform] = summary.orders
            done += PULLED[platform]
            progress("stream", done, total)
        outbox.drain(engine, connection)  # whatever the server committed but could not push to Redis
        SimpleWorker(["intake"], connection=connection).work(burst=True, logging_level="WARNING")
    finally:
        platforms.reset()
    if Queue("intake", connection=connection).count:
        raise StreamError("the intake queue still holds jobs after its burst worker finished")

    with engine.connect() as c:
        report.inbox = {
            InboxStatus(s).value: int(n)
            for s, n in c.execute(select(InboxMessage.status, func.count()).group_by(InboxMessage.status))
        }
        report.exceptions = {
            str(kind): int(n)
            for kind, n in c.execute(
                select(ExceptionItem.kind, func.count())
                .where(ExceptionItem.status == "open", ExceptionItem.subject.like("inbox %"))
                .group_by(ExceptionItem.kind)
            )
        }
    return report
