"""Pulls: Taobao/Tmall, JD and Pinduoduo orders are pulled in increments by modified time, from a cursor.

``pull_increments(platform, shop_code)`` (the rq task) resumes from the shop's :class:`IntakeCursor` (created
at now − 1 h the first time), pulls window after window — as long as the platform allows
(the adapter module's ``MAX_WINDOW``, else 30 minutes) — up to now − :data:`SAFETY_LAG` (platforms index
changes with a delay, and backward paging is only exact over a window that has ended), and page by page
within a window. Each page is one transaction: its orders become inbox rows (event ``pulled``, message id
``<platform order id>@<updated_at ISO>``, so a re-pulled unchanged order is a duplicate and writes nothing),
one outbox ``normalise_inbox`` job per :data:`~fulfil.intake.inbox.IDS_PER_JOB` new rows, and the cursor
advances — all or nothing, so a crash never skips a window nor loses a page. Two pulls of one shop at once
cannot both advance: the cursor moves only from where the page was read (compare-and-set); the loser writes
nothing and stops.

A job pulls at most :data:`MAX_PAGES` pages; a shop still behind enqueues its next pull in the last page's
transaction, so a long catch-up proceeds job after job. A retryable platform error stops the pull where it is
(the next tick resumes); a non-retryable one (an expired session, a revoked app) opens a ``pull_failed``
exception item for the shop, and both re-raise so rq records the failure.

:func:`schedule_pulls` is what the workers' periodic tick calls: one ``pull_increments`` job per shop of a
pulled platform that has an app able to act for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fulfil import db
from fulfil import settings as _settings
from fulfil.domain.models import (
    ExceptionItem,
    InboxMessage,
    InboxStatus,
    IntakeCursor,
    Platform,
    PlatformApp,
    PlatformShop,
)
from fulfil.intake import normalise, platforms
from fulfil.jobs import outbox
from fulfil.jobs.outbox import JobArgumentError
from fulfil.pii import Sealer
from integrations.base import ApiError, CanonicalOrder, IncrementApi

log = logging.getLogger(__name__)

TASK = "pull_increments"
FIRST_LOOKBACK = dt.timedelta(hours=1)
SAFETY_LAG = dt.timedelta(seconds=30)
DEFAULT_WINDOW = dt.timedelta(minutes=30)
MAX_PAGES = 200
TOPIC = "increment"
ROWS_PER_STATEMENT = 1000
_EPOCH = dt.datetime(1970, 1, 1)


class PullError(LookupError):
    """The pull cannot start: an unknown platform or shop; the message names it."""


@dataclass(frozen=True)
class PullSummary:
    platform: str
    shop_code: str
    pages: int
    orders: int
    new_rows: int
    position: dt.datetime
    caught_up: bool
    lost_race: bool = False  # another pull of the shop moved the cursor first


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _whole_second(t: dt.datetime) -> dt.datetime:
    return t.replace(microsecond=0)


def max_window(platform: str) -> dt.timedelta:
    """The longest window the platform's increment API accepts (its adapter's ``MAX_WINDOW``)."""
    try:
        module = import_module(platforms.SPECS[platform].module)
    except ImportError:
        return DEFAULT_WINDOW
    value = getattr(module, "MAX_WINDOW", DEFAULT_WINDOW)
    return value if isinstance(value, dt.timedelta) and value > dt.timedelta(0) else DEFAULT_WINDOW


def window_of_cursor(page_cursor: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The window a page cursor belongs to (the shared increments paging encodes it), or None."""
    from integrations.increments import PageCursor

    try:
        c = PageCursor.decode(page_cursor)
    except ValueError:
        return None
    return _EPOCH + dt.timedelta(seconds=c.start), _EPOCH + dt.timedelta(seconds=c.end)


# --- the job ---------------------------------------------------------------------------------------------


def pull_increments(platform: str, shop_code: str) -> PullSummary:
    """The ``pull_increments`` task (string ids): pull the shop's changed orders up to now − the lag."""
    if platform not in platforms.PULL_PLATFORMS:
        raise PullError(
            f"{platform!r} is not a pulled platform; pulled: {', '.join(platforms.PULL_PLATFORMS)}"
        )
    eng = db.engine()
    now = _utcnow()
    horizon = _whole_second(now - SAFETY_LAG)
    with db.session_scope(eng) as session:
        # the pull reads its shop and cursor, then writes the cursor: on SQLite a planner committing in
        # between made that write fail ("database is locked") instead of waiting
        db.sqlite_write_lock(session, "intake_cursors")
        shop = session.execute(
            select(PlatformShop.id, PlatformShop.merchant_id).where(
                PlatformShop.platform == Platform(platform), PlatformShop.shop_code == shop_code
            )
        ).one_or_none()
        if shop is None:
            raise PullError(f"no {platform} shop {shop_code!r} is registered")
        keys = platforms.shop_app_keys(session, platform, {shop.merchant_id})[shop.merchant_id]
        cursor_id, position, page_cursor = _cursor(session, platform, shop_code, now)
    credential = platforms.credential_for(eng, platform, keys, shop_code)
    api = platforms.increment_api(platform, credential)
    sealer = Sealer(_settings.get().pii_key)
    limit = max_window(platform)

    pages = orders = new_rows = 0
    while True:
        start, end = position, min(position + limit, horizon)
        if page_cursor is not None:
            window = window_of_cursor(page_cursor)
            if window is None or window[0] != position:
                log.warning(
                    "pull %s/%s: page cursor of another window, restarting the window", platform, shop_code
                )
                page_cursor = None
            else:
                end = window[1]
        if end <= start:
            return PullSummary(platform, shop_code, pages, orders, new_rows, position, True)
        try:
            page = _pull_page(api, shop_code, start, end, page_cursor, limit)
        except ApiError as exc:
            if not exc.retryable:
                _record_failure(eng, platform, shop_code, exc)
            raise
        if page is None:  # the window was too full: a smaller one
            limit = max(dt.timedelta(seconds=1), (end - start) / 2)
            limit = dt.timedelta(seconds=math.ceil(limit.total_seconds()))
            continue
        orders_page, next_cursor = page
        new_position, new_page_cursor = (end, None) if next_cursor is None else (start, next_cursor)
        behind = (new_position < horizon or new_page_cursor is not None) and pages + 1 >= MAX_PAGES
        with db.session_scope(eng) as session:
            moved = session.execute(
                update(IntakeCursor)
                .where(
                    IntakeCursor.id == cursor_id,
                    IntakeCursor.position == position,
                    IntakeCursor.page_cursor.is_(None)
                    if page_cursor is None
                    else IntakeCursor.page_cursor == page_cursor,
                )
                .values(position=new_position, page_cursor=new_page_cursor, updated_at=_utcnow())
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if moved != 1:  # nothing was written in this transaction
                log.info("pull %s/%s: another pull moved the cursor; stopping", platform, shop_code)
                return PullSummary(platform, shop_code, pages, orders, new_rows, position, False, True)
            new_rows += store_pulled(session, platform, shop_code, credential.app_key, orders_page, sealer)
            if behind:
                outbox.enqueue(session, TASK, platform, shop_code)
        pages += 1
        orders += len(orders_page)
        position, page_cursor = new_position, new_page_cursor
        if behind:
            return PullSummary(platform, shop_code, pages, orders, new_rows, position, False)


def _pull_page(
    api: IncrementApi,
    shop_code: str,
    start: dt.datetime,
    end: dt.datetime,
    page_cursor: str | None,
    limit: dt.timedelta,
) -> tuple[list[CanonicalOrder], str | None] | None:
    """One page; None when the platform cannot page through a window that full (try a smaller one)."""
    from integrations.increments import WindowTooFull

    try:
        page = api.pull(shop_code, start, end, page_cursor)
    except WindowTooFull:
        if page_cursor is not None or end - start <= dt.timedelta(seconds=1):
            raise
        return None
    return list(page.orders), page.next_cursor


def _cursor(
    session: Session, platform: str, shop_code: str, now: dt.datetime
) -> tuple[int, dt.datetime, str | None]:
    """The shop's cursor, created at now − 1 h the first time (two first pulls at once create one)."""
    row = session.execute(
        select(IntakeCursor.id, IntakeCursor.position, IntakeCursor.page_cursor).where(
            IntakeCursor.platform == Platform(platform), IntakeCursor.shop_code == shop_code
        )
    ).one_or_none()
    if row is not None:
        return row[0], row[1], row[2]
    session.execute(
        _insert_ignore(session, IntakeCursor.__table__).values(
            platform=Platform(platform).value,
            shop_code=shop_code,
            position=_whole_second(now - FIRST_LOOKBACK),
            page_cursor=None,
            updated_at=now,
        )
    )
    got = session.execute(
        select(IntakeCursor.id, IntakeCursor.position, IntakeCursor.page_cursor).where(
            IntakeCursor.platform == Platform(platform), IntakeCursor.shop_code == shop_code
        )
    ).one()
    return got[0], got[1], got[2]


def _insert_ignore(session: Session, table: Any) -> Any:
    name = session.get_bind().dialect.name
    stmt = postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_nothing()


def message_id(order: CanonicalOrder) -> str:
    return f"{order.platform_order_id}@{order.updated_at.isoformat()}"


def store_pulled(
    session: Session,
    platform: str,
    shop_code: str,
    app_key: str | None,
    orders: list[CanonicalOrder],
    sealer: Sealer,
) -> int:
    """Pulled orders as inbox rows (a snapshot already stored writes nothing) and their normalise jobs."""
    now = _utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for order in orders:
        mid = message_id(order)
        rows.setdefault(
            mid,
            {
                "platform": Platform(platform).value,
                "message_id": mid,
                "app_key": app_key,
                "topic": TOPIC,
                "event": normalise.PULLED,
                "shop_code": shop_code,
                "platform_order_id": order.platform_order_id,
                "occurred_at": order.updated_at,
                "received_at": now,
                "raw": normalise.encode_pulled(order, sealer),
                "status": InboxStatus.RECEIVED.value,
                "attempts": 0,
                "reason": None,
            },
        )
    values = list(rows.values())
    new_ids: list[int] = []
    for i in range(0, len(values), ROWS_PER_STATEMENT):
        stmt = (
            _insert_ignore(session, InboxMessage.__table__)
            .values(values[i : i + ROWS_PER_STATEMENT])
            .returning(InboxMessage.__table__.c.id)
        )
        new_ids.extend(int(r) for r in session.scalars(stmt))
    normalise.enqueue(session, new_ids)
    return len(new_ids)


def _record_failure(eng: Engine, platform: str, shop_code: str, exc: ApiError) -> None:
    subject = f"shop {platform}:{shop_code}"[:64]
    with db.session_scope(eng) as session:
        already = session.scalar(
            select(ExceptionItem.id).where(
                ExceptionItem.kind == "pull_failed",
                ExceptionItem.subject == subject,
                ExceptionItem.status == "open",
            )
        )
        if already is None:
            session.execute(
                insert(ExceptionItem).values(
                    kind="pull_failed",
                    subject=subject,
                    reason=str(exc)[:512],
                    payload={"platform": platform, "shop_code": shop_code, "code": exc.code},
                    status="open",
                    created_at=_utcnow(),
                )
            )


# --- scheduling ------------------------------------------------------------------------------------------


def schedule_pulls(session: Session) -> int:
    """Enqueue ``pull_increments`` for every shop of a pulled platform with an active app that may act for
    it (the shop's merchant's, or one registered without a merchant). Returns the jobs enqueued."""
    pulled = [Platform(p) for p in platforms.PULL_PLATFORMS]
    apps: dict[str, set[int | None]] = defaultdict(set)
    for plat, merchant in session.execute(
        select(PlatformApp.platform, PlatformApp.merchant_id).where(
            PlatformApp.platform.in_(pulled), PlatformApp.active.is_(True)
        )
    ):
        apps[Platform(plat).value].add(merchant)
    if not apps:
        return 0
    count = 0
    for plat, code, merchant in session.execute(
        select(PlatformShop.platform, PlatformShop.shop_code, PlatformShop.merchant_id)
        .where(PlatformShop.platform.in_(pulled))
        .order_by(PlatformShop.id)
    ):
        name = Platform(plat).value
        able = apps.get(name, set())
        if merchant not in able and None not in able:
            continue
        try:
            outbox.enqueue(session, TASK, name, code)
        except JobArgumentError as exc:
            log.error("pull of %s shop %r not scheduled: %s", name, code, exc)
            continue
        count += 1
    return count
