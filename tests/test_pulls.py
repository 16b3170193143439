"""Pulls: Taobao, JD and Pinduoduo increments from their fakes into the inbox, resuming from the cursor, never
skipping a page, never storing a snapshot twice; and the worker's tick scheduling them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import insert, select, update

from fulfil import db
from fulfil.domain.models import (
    ExceptionItem,
    InboxMessage,
    InboxStatus,
    IntakeCursor,
    Order,
    OutboxJob,
)
from fulfil.intake import normalise, platforms, pulls
from fulfil.jobs.worker import OutboxWorker
from integrations.base import ApiError, AppCredential, IncrementApi, IncrementPage
from integrations.fakes import jd as jd_fake
from integrations.fakes import pinduoduo as pdd_fake
from integrations.fakes import taobao as top_fake
from integrations.fakes.pulled import PulledPlatformFake
from tests.conftest import Backend
from tests.test_normalise import register, seed_shop

SHOP = "tb-shop-1"
SKUS = ["TB-A-M", "TB-A-L", "TB-B-M", "TB-C-S"]
CRED = top_fake.credential("top-app-1", "top-secret-1", [SHOP])
FAKES: dict[str, tuple[type[PulledPlatformFake], AppCredential]] = {
    "taobao": (top_fake.TaobaoFake, CRED),
    "jd": (jd_fake.JdFake, jd_fake.credential("jd-app-1", "jd-secret-1", [SHOP])),
    "pinduoduo": (pdd_fake.PinduoduoFake, pdd_fake.credential("pdd-client-1", "pdd-secret-1", [SHOP])),
}


@pytest.fixture(autouse=True)
def _leave_the_database_empty(clean: Backend) -> Iterator[None]:
    """Leave nothing behind: the demo's test refuses a database that holds shops but no orders."""
    yield
    clean.truncate()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class Pulled:
    platform: str
    fake: Any  # the platform's PulledPlatformFake


def _shop(b: Backend, platform: str) -> Pulled:
    """A shop with 600 orders changed over the last three hours (several pages, and several windows on
    Pinduoduo), its app registered, its API faked."""
    kind, cred = FAKES[platform]
    seed_shop(b.engine, platform, SHOP, SKUS)
    register(b, cred)
    fake = kind(
        cred,
        shop_codes=[SHOP],
        sku_codes=SKUS,
        seed=7,
        now=_now(),
        orders_per_shop=600,
        history=dt.timedelta(hours=3),
    )
    platforms.set_http_client_factory(lambda p: fake.client())
    return Pulled(platform, fake)


@pytest.fixture(params=list(FAKES))
def shop(clean: Backend, request: pytest.FixtureRequest) -> Iterator[Pulled]:
    yield _shop(clean, request.param)
    platforms.reset()


@pytest.fixture
def top(clean: Backend) -> Iterator[Any]:
    yield _shop(clean, "taobao").fake
    platforms.reset()


def _expected(fake: Any, start: dt.datetime, end: dt.datetime) -> set[tuple[str, dt.datetime]]:
    orders = [o for o in fake.orders.values() if fake.visible(o)]
    return {(o.order_id, o.modified) for o in orders if start <= o.modified < end}


def _start_at(b: Backend, platform: str, start: dt.datetime) -> None:
    with b.engine.begin() as c:
        c.execute(
            insert(IntakeCursor).values(platform=platform, shop_code=SHOP, position=start, updated_at=start)
        )


def _stored(b: Backend) -> list[tuple[str, dt.datetime]]:
    with b.engine.connect() as c:
        return [
            (n, t)
            for n, t in c.execute(
                select(InboxMessage.platform_order_id, InboxMessage.occurred_at).where(
                    InboxMessage.event == normalise.PULLED
                )
            )
        ]


def _cursor(b: Backend) -> tuple[dt.datetime, str | None]:
    with b.engine.connect() as c:
        position, page = c.execute(select(IntakeCursor.position, IntakeCursor.page_cursor)).one()
    return position, page


def test_the_first_pull_takes_the_last_hour_and_normalises_it(
    clean: Backend, shop: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _now()
    monkeypatch.setattr(pulls, "_utcnow", lambda: now)
    summary = pulls.pull_increments(shop.platform, SHOP)
    position, page = _cursor(clean)
    start = now - pulls.FIRST_LOOKBACK
    assert page is None and summary.caught_up
    assert position == now - pulls.SAFETY_LAG
    want = _expected(shop.fake, start, position)
    assert len(want) > 150, "the seed spreads enough orders over the last hour for several pages"
    stored = _stored(clean)
    assert sorted(stored) == sorted(want) and summary.new_rows == len(want) and summary.pages > 1
    with clean.engine.connect() as c:
        message_ids = set(c.execute(select(InboxMessage.message_id)).scalars())
        jobs = c.execute(select(OutboxJob.task, OutboxJob.args)).all()
    assert message_ids == {f"{n}@{t.isoformat()}" for n, t in stored}
    queued = sorted(i for task, args in jobs if task == "normalise_inbox" for i in args)
    assert len(queued) == len(want)

    result = normalise.normalise_inbox(*queued)
    assert (result.normalised, result.exceptions) == (len(want), 0)
    state = {"unpaid": "created", "paid": "paid", "shipped": "shipped", "completed": "delivered"}
    with clean.engine.connect() as c:
        orders = dict(c.execute(select(Order.platform_order_id, Order.status)).all())
    book = shop.fake.orders
    assert orders == {n: state.get(book[n].state, book[n].state) for n, _ in want}


def test_a_repull_stores_nothing_twice_and_new_changes_come_next_time(
    clean: Backend, shop: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = _now() - dt.timedelta(hours=1)
    _start_at(clean, shop.platform, start)
    pulls.pull_increments(shop.platform, SHOP)
    first = len(_stored(clean))
    with clean.engine.begin() as c:  # as if the cursor had been lost: the same hour again
        c.execute(update(IntakeCursor).values(position=start))
    again = pulls.pull_increments(shop.platform, SHOP)
    assert again.orders >= first and again.new_rows == 0 and len(_stored(clean)) == first

    paid = next(o for o in shop.fake.orders.values() if o.state == "unpaid")
    shop.fake.pay(paid.order_id)  # modified now
    later = _now() + dt.timedelta(minutes=2)
    monkeypatch.setattr(pulls, "_utcnow", lambda: later)
    nxt = pulls.pull_increments(shop.platform, SHOP)
    assert nxt.new_rows >= 1
    assert (paid.order_id, paid.modified) in _stored(clean)
    assert _cursor(clean)[0] == later - pulls.SAFETY_LAG


def test_a_crash_mid_pull_loses_no_page_and_repeats_none(
    clean: Backend, shop: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = _now() - dt.timedelta(hours=1)
    _start_at(clean, shop.platform, start)
    real = pulls.store_pulled
    calls = {"n": 0}

    def crash_on_second_page(*args: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed between the page's read and its commit")
        return real(*args, **kw)

    monkeypatch.setattr(pulls, "store_pulled", crash_on_second_page)
    with pytest.raises(RuntimeError, match="killed"):
        pulls.pull_increments(shop.platform, SHOP)
    assert _cursor(clean) != (start, None)  # the first page committed with its cursor, the second did not
    assert len(_stored(clean)) > 0

    monkeypatch.setattr(pulls, "store_pulled", real)
    pulls.pull_increments(shop.platform, SHOP)
    end, page = _cursor(clean)
    assert page is None
    stored = _stored(clean)
    assert len(stored) == len(set(stored))
    assert set(stored) == _expected(shop.fake, start, end)


def test_two_pulls_of_a_shop_at_once_advance_the_cursor_once(
    clean: Backend, shop: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = platforms.increment_api

    class Racing:
        """The other puller moves the cursor while this one reads its first page."""

        def __init__(self, api: IncrementApi) -> None:
            self.api, self.raced = api, False

        def pull(
            self, shop_code: str, start: dt.datetime, end: dt.datetime, cursor: str | None
        ) -> IncrementPage:
            page = self.api.pull(shop_code, start, end, cursor)
            if not self.raced:
                self.raced = True
                with clean.engine.begin() as c:
                    c.execute(update(IntakeCursor).values(position=end, page_cursor=None))
            return page

    monkeypatch.setattr(platforms, "increment_api", lambda p, cred: Racing(real_build(p, cred)))
    summary = pulls.pull_increments(shop.platform, SHOP)
    assert summary.lost_race and summary.pages == 0
    assert _stored(clean) == []  # the loser wrote nothing


def test_platform_errors_stop_the_pull_where_it_is(clean: Backend, top: Any) -> None:
    top.fail_next(top.error(7, "App Call Limited", "accesscontrol.limited-by-app-access-count"))
    with pytest.raises(ApiError) as err:
        pulls.pull_increments("taobao", SHOP)
    assert err.value.retryable
    position, page = _cursor(clean)
    assert page is None and _stored(clean) == []
    with clean.engine.connect() as c:
        assert c.execute(select(ExceptionItem.id)).all() == []

    top.fail_next(top.error(27, "Invalid Session", "invalid-sessionkey", "session expired"))
    with pytest.raises(ApiError) as err:
        pulls.pull_increments("taobao", SHOP)
    assert not err.value.retryable
    assert _cursor(clean) == (position, None)
    with clean.engine.connect() as c:
        [(kind, subject)] = c.execute(select(ExceptionItem.kind, ExceptionItem.subject)).all()
    assert (kind, subject) == ("pull_failed", f"shop taobao:{SHOP}")


def test_pulls_are_scheduled_for_shops_with_an_app_by_the_workers_tick(clean: Backend) -> None:
    seed_shop(clean.engine, "taobao", "tb-with-app", SKUS)
    seed_shop(clean.engine, "taobao", "tb-other-merchant", SKUS, merchant_code="M2")
    seed_shop(clean.engine, "doudian", "dy-1", SKUS)
    register(clean, CRED)  # for M1
    with db.session_scope(clean.engine) as s:
        assert pulls.schedule_pulls(s) == 1
    with clean.engine.connect() as c:
        assert c.execute(select(OutboxJob.task, OutboxJob.args)).all() == [
            ("pull_increments", ["taobao", "tb-with-app"])
        ]

    worker = OutboxWorker(
        ["default"], drain_interval=1.0, tick_interval=60.0, connection=clean.redis, name="w1"
    )
    assert worker.tick_if_due(now=1_900_000_000.0)
    intake = Queue("intake", connection=clean.redis)
    assert [j.args for j in intake.get_jobs()] == [
        ("pull_increments", "taobao", "tb-with-app"),
        ("pull_increments", "taobao", "tb-with-app"),
    ]
    assert Queue("default", connection=clean.redis).count == 1  # the batching tick, as before


def test_a_pull_of_an_unknown_shop_or_platform_is_refused_by_name(clean: Backend) -> None:
    with pytest.raises(pulls.PullError, match="'nope'"):
        pulls.pull_increments("taobao", "nope")
    with pytest.raises(pulls.PullError, match="'doudian' is not a pulled platform"):
        pulls.pull_increments("doudian", "x")
    with clean.engine.connect() as c:
        assert (
            c.execute(select(InboxMessage.id).where(InboxMessage.status == InboxStatus.RECEIVED)).all() == []
        )
