"""Normalisation: stored platform messages become canonical orders applied to the database.

``normalise_inbox(*inbox_ids)`` (the rq task) works on the rows still ``received``, in three steps:

1. **Read** (no lock): the rows, their shops (one query) and the apps that may act for them.
2. **Fetch** (no transaction open): the order each message is about, through the platform's signed API
   (:mod:`fulfil.intake.platforms`), once per order however many messages name it, up to
   :data:`FETCH_CONCURRENCY` calls in flight (each waits on the platform's round trip) — or the canonical
   order the message itself carries (a pulled increment; a push that is the whole order, e.g. Shopify's).
   When the job holds at least :data:`LIST_MIN` orders of one app and its API can list the orders changed in
   a window (:class:`~integrations.base.OrderListApi`, e.g. Douyin ``order.searchList``), the window around
   the messages' times is listed first, a page of whole orders per call; only what the listing does not
   bring is fetched order by order.
3. **Apply** (one transaction): the rows are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a row another
   worker holds is its business; SQLite's write lock otherwise) and checked to be still ``received``; the SKU
   mappings of every line come in one query; addresses are parsed; :func:`fulfil.intake.convergence.converge`
   applies all orders in bulk inside a savepoint. Should that fail, each message is applied in its own
   savepoint, so one bad message never rolls back the others.

Each message ends as exactly one of ``normalised`` (with its order), ``ignored`` (a heartbeat, a message about
no order, an older snapshot) or ``exception`` with an exception item naming it and why: ``unknown_shop``,
``unknown_sku`` (the codes named), ``bad_address``, ``bad_order``, ``no_credential``, ``no_adapter``,
``fetch_failed``, ``state_conflict``, ``unreadable``, ``apply_failed``. Nothing is dropped; an operator who
fixes the cause (adds the SKU mapping, the shop) puts the message back with :func:`requeue`.

Retries: a retryable :class:`~integrations.base.ApiError` leaves its message ``received`` with
``attempts += 1`` and its reason, the other messages of the job are committed, and the job then raises
:class:`RetryLater` so rq records the failure. The message is enqueued again through the outbox by
:func:`requeue_due` (called by the workers' periodic tick) once ``received_at + 30 s × (2^attempts − 1)``
has passed (30 s, 90 s, 3.5 min, 7.5 min); after :data:`MAX_ATTEMPTS` it becomes an exception
(``fetch_failed``). The same sweep re-enqueues rows whose job was lost (a worker killed mid-job, a Redis
restart) once they have waited :data:`ORPHAN_AFTER` and the intake queue is not holding a backlog.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, cast

import redis
from sqlalchemy import Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from fulfil import db
from fulfil import settings as _settings
from fulfil.domain.models import (
    ExceptionItem,
    InboxMessage,
    InboxStatus,
    Platform,
    PlatformShop,
    PlatformSkuMapping,
)
from fulfil.domain.states import IllegalTransition
from fulfil.intake import platforms
from fulfil.intake.address import AddressError, parse_address
from fulfil.intake.convergence import Incoming, Outcome, converge, one_of
from fulfil.intake.inbox import IDS_PER_JOB
from fulfil.jobs import outbox
from fulfil.pii import PiiError, Sealer
from integrations.base import (
    Address,
    ApiError,
    CanonicalOrder,
    OrderLine,
    OrderListApi,
    OrderStatus,
    PayloadError,
    PushEvent,
)

log = logging.getLogger(__name__)

TASK = "normalise_inbox"
PULLED = "pulled"  # inbox.event of a pulled increment; its raw is :func:`encode_pulled`'s
MAX_ATTEMPTS = 5
RETRY_BASE = dt.timedelta(seconds=30)
ORPHAN_AFTER = dt.timedelta(minutes=2)
FETCH_CONCURRENCY = 16  # order-detail calls in flight per job
LIST_MIN = 20  # orders of one app in a job before listing a window pays for itself
LIST_BEFORE = dt.timedelta(seconds=1)  # the window opens this long before the job's first message
LIST_AFTER = dt.timedelta(seconds=2)  # and closes this long after its last (the order may change after)
LIST_CROWDING = 3  # a window holding more than this many times the orders wanted is not paged through
LIST_PAGE_GUESS = 80  # orders expected per listed page (a page holds up to 100, some of other jobs)
SWEEP_LIMIT = 50_000
BUSY_QUEUE = 100  # jobs waiting in the intake queue: a backlog is being worked, the sweep waits
REASON_CHARS = 512
APPLY_ATTEMPTS = 3
_TRANSIENT = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure
_CHUNK = 5000


class RetryLater(ApiError):
    """Some messages of the job wait for a retry (their platform answered with a retryable error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, code="retry_later")


@dataclass(frozen=True)
class Summary:
    normalised: int = 0
    ignored: int = 0
    exceptions: int = 0
    retrying: int = 0
    skipped: int = 0  # not received any more, or held by another worker


@dataclass
class _Msg:
    id: int
    platform: str
    message_id: str
    event: str
    shop_code: str | None
    platform_order_id: str | None
    raw: bytes
    attempts: int
    occurred_at: dt.datetime | None
    shop: tuple[int, int] | None = None  # shop id, merchant id
    order: CanonicalOrder | None = None
    final: Outcome | None = None
    retry: str | None = None  # a retryable error's text


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _clip(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ignored(m: _Msg, reason: str) -> Outcome:
    return Outcome(m.id, InboxStatus.IGNORED, None, reason)


def _exception(m: _Msg, kind: str, reason: str, **payload: Any) -> Outcome:
    return Outcome(m.id, InboxStatus.EXCEPTION, None, _clip(reason), kind, payload)


# --- pulled increments: how a pulled canonical order is kept in the inbox ------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: Any) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(str(value))


def encode_pulled(order: CanonicalOrder, sealer: Sealer) -> bytes:
    """A pulled order as inbox bytes: JSON with the receiver's address sealed (personal data stays sealed)."""
    address = None
    if order.address is not None:
        a = order.address
        plain = json.dumps([a.name, a.phone, a.province, a.city, a.district, a.detail], ensure_ascii=False)
        address = base64.b64encode(sealer.seal_bytes(plain.encode())).decode()
    doc = {
        "v": 1,
        "platform": order.platform,
        "shop_code": order.shop_code,
        "platform_order_id": order.platform_order_id,
        "status": str(order.status),
        "created_at": _iso(order.created_at),
        "paid_at": _iso(order.paid_at),
        "updated_at": _iso(order.updated_at),
        "ship_by": _iso(order.ship_by),
        "presale": order.presale,
        "cancel_reason": order.cancel_reason,
        "lines": [[line.platform_sku_code, line.quantity, line.title] for line in order.lines],
        "address_sealed": address,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def decode_pulled(raw: bytes, sealer: Sealer) -> CanonicalOrder:
    """The order :func:`encode_pulled` stored; PayloadError naming what is wrong."""
    try:
        doc = json.loads(raw)
        address = None
        if doc.get("address_sealed"):
            fields = json.loads(sealer.open_bytes(base64.b64decode(doc["address_sealed"]), "pulled address"))
            address = Address(*[str(f) for f in fields])
        created, updated = _time(doc["created_at"]), _time(doc["updated_at"])
        if created is None or updated is None:
            raise ValueError("created_at and updated_at are required")
        return CanonicalOrder(
            platform=str(doc["platform"]),
            shop_code=str(doc["shop_code"]),
            platform_order_id=str(doc["platform_order_id"]),
            status=OrderStatus(doc["status"]),
            created_at=created,
            paid_at=_time(doc.get("paid_at")),
            updated_at=updated,
            lines=[OrderLine(str(c), int(q), str(t)) for c, q, t in doc["lines"]],
            address=address,
            ship_by=_time(doc.get("ship_by")),
            presale=bool(doc.get("presale", False)),
            cancel_reason=doc.get("cancel_reason"),
        )
    except (ValueError, KeyError, TypeError, PiiError) as exc:
        raise PayloadError(f"pulled order unreadable: {type(exc).__name__}: {exc}") from None


# --- the job ---------------------------------------------------------------------------------------------


def normalise_inbox(*inbox_ids: int) -> Summary:
    """The ``normalise_inbox`` task: normalise the given inbox rows that are still ``received``."""
    ids = sorted({int(i) for i in inbox_ids})
    eng = db.engine()
    sealer = Sealer(_settings.get().pii_key)
    msgs = _read(eng, ids)
    if not msgs:
        return Summary(skipped=len(ids))
    _resolve_shops(eng, msgs)
    _canonical(eng, msgs, sealer)
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            summary = _apply(eng, msgs, sealer)
            break
        except OperationalError as exc:
            # Two jobs writing the same new orders in another order can deadlock; PostgreSQL aborts one.
            # Its transaction rolled back whole, so applying again (after re-locking) is safe.
            if attempt == APPLY_ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _TRANSIENT:
                raise
            log.warning("normalise: apply attempt %d rolled back (%s); again", attempt, exc.orig)
    summary = replace(summary, skipped=summary.skipped + len(ids) - len(msgs))
    if summary.retrying:
        raise RetryLater(
            f"{summary.retrying} message(s) of inbox {ids[0]}..{ids[-1]} wait for a retry; "
            f"{summary.normalised} normalised, {summary.ignored} ignored, {summary.exceptions} exceptions"
        )
    return summary


def _read(eng: Engine, ids: list[int]) -> list[_Msg]:
    msgs: list[_Msg] = []
    with eng.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            for row in conn.execute(
                select(
                    InboxMessage.id,
                    InboxMessage.platform,
                    InboxMessage.message_id,
                    InboxMessage.event,
                    InboxMessage.shop_code,
                    InboxMessage.platform_order_id,
                    InboxMessage.raw,
                    InboxMessage.attempts,
                    InboxMessage.occurred_at,
                )
                .where(
                    one_of(conn, InboxMessage.id, ids[i : i + _CHUNK]),
                    InboxMessage.status == InboxStatus.RECEIVED,
                )
                .order_by(InboxMessage.id)
            ):
                msgs.append(_Msg(row[0], Platform(row[1]).value, *row[2:]))
    return msgs


def _resolve_shops(eng: Engine, msgs: list[_Msg]) -> None:
    """Shop id and merchant of each message (one query); heartbeats, orderless and unknown shops end here."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for m in msgs:
        if m.shop_code is not None:
            wanted[m.platform].add(m.shop_code)
    shops: dict[tuple[str, str], tuple[int, int]] = {}
    with eng.connect() as conn:
        for platform, codes in wanted.items():
            ordered = sorted(codes)
            for i in range(0, len(ordered), _CHUNK):
                for sid, code, mid in conn.execute(
                    select(PlatformShop.id, PlatformShop.shop_code, PlatformShop.merchant_id).where(
                        PlatformShop.platform == Platform(platform),
                        PlatformShop.shop_code.in_(ordered[i : i + _CHUNK]),
                    )
                ):
                    shops[(platform, code)] = (sid, mid)
    for m in msgs:
        if m.event == PushEvent.HEARTBEAT.value:
            m.final = _ignored(m, "a heartbeat")
        elif m.platform_order_id is None and m.event != PULLED:
            m.final = _ignored(m, f"{m.platform} message about no order")
        elif m.shop_code is None or (m.platform, m.shop_code) not in shops:
            m.final = _exception(
                m,
                "unknown_shop",
                f"no {m.platform} shop {m.shop_code!r} is registered (platform_shops); "
                "add it, then requeue the message",
                shop_code=m.shop_code,
            )
        else:
            m.shop = shops[(m.platform, m.shop_code)]


def _canonical(eng: Engine, msgs: list[_Msg], sealer: Sealer) -> None:
    """The canonical order of each open message: carried by the message, else fetched once per order."""
    to_fetch: dict[tuple[str, str, str], list[_Msg]] = defaultdict(list)
    readers: dict[str, Callable[[str, bytes], CanonicalOrder | None] | None] = {}
    for m in msgs:
        if m.final is not None:
            continue
        try:
            if m.event == PULLED:
                m.order = decode_pulled(m.raw, sealer)
                continue
            if m.platform not in readers:
                readers[m.platform] = platforms.order_from_push(m.platform)
            reader = readers[m.platform]
            if reader is not None:
                assert m.shop_code is not None
                m.order = reader(m.shop_code, m.raw)
                if m.order is not None:
                    continue
        except PayloadError as exc:
            m.final = _exception(m, "unreadable", f"{m.platform} message {m.message_id}: {exc}")
            continue
        assert m.shop_code is not None and m.platform_order_id is not None
        to_fetch[(m.platform, m.shop_code, m.platform_order_id)].append(m)
    if not to_fetch:
        return

    merchants: dict[str, set[int]] = defaultdict(set)
    for (platform, _, _), group in to_fetch.items():
        assert group[0].shop is not None
        merchants[platform].add(group[0].shop[1])
    with db.session_scope(eng) as session:
        keys = {p: platforms.shop_app_keys(session, p, ms) for p, ms in merchants.items()}
    apis: dict[tuple[str, str], Any] = {}  # (platform, app key) -> its API client
    calls: list[tuple[str, str, Any, list[_Msg]]] = []
    for (platform, shop_code, number), group in to_fetch.items():
        shop = group[0].shop
        assert shop is not None
        try:
            cred = platforms.credential_for(eng, platform, keys[platform][shop[1]], shop_code)
            api = apis.get((platform, cred.app_key))
            if api is None:
                api = apis[(platform, cred.app_key)] = platforms.order_api(platform, cred)
        except platforms.NoCredential as exc:
            _settle(group, _exception(group[0], "no_credential", str(exc), shop_code=shop_code))
            continue
        except platforms.NoAdapter as exc:
            _settle(group, _exception(group[0], "no_adapter", str(exc)))
            continue
        calls.append((platform, number, api, group))
    if not calls:
        return
    # The calls wait on the platform's round trip, not on this process: several at once hide the latency.
    with ThreadPoolExecutor(FETCH_CONCURRENCY, thread_name_prefix="fetch") as pool:
        calls = _listed(pool, calls)
        results = list(pool.map(lambda call: _fetch(*call), calls))
    for (_, _, _, group), result in zip(calls, results, strict=True):
        _settle(group, result)


def _listed(
    pool: ThreadPoolExecutor, calls: list[tuple[str, str, Any, list[_Msg]]]
) -> list[tuple[str, str, Any, list[_Msg]]]:
    """Settle what listing the apps' changed orders brings (see the module docstring); the calls left."""
    by_api: dict[int, list[tuple[str, str, Any, list[_Msg]]]] = defaultdict(list)
    for call in calls:
        api, group = call[2], call[3]
        if hasattr(api, "changed_orders") and all(m.occurred_at is not None for m in group):
            by_api[id(api)].append(call)
    listed: dict[tuple[str, str], CanonicalOrder] = {}
    for api_calls in by_api.values():
        if len(api_calls) >= LIST_MIN:
            listed.update(_list_window(pool, api_calls))
    if not listed:
        return calls
    left: list[tuple[str, str, Any, list[_Msg]]] = []
    for call in calls:
        _, number, _, group = call
        order = listed.get((group[0].shop_code or "", number))
        # A listing may come from an index that lags the order itself: a snapshot older than the event
        # that announced it would undo that event, so such an order is fetched on its own.
        newest = max(m.occurred_at for m in group if m.occurred_at is not None).replace(microsecond=0)
        if order is None or order.updated_at < newest:
            left.append(call)
        else:
            _settle(group, order)
    return left


def _list_window(
    pool: ThreadPoolExecutor, calls: list[tuple[str, str, Any, list[_Msg]]]
) -> dict[tuple[str, str], CanonicalOrder]:
    """The orders one app's listing brings for ``calls``, keyed by (shop code, order number)."""
    api: OrderListApi = calls[0][2]
    times = [m.occurred_at for _, _, _, group in calls for m in group if m.occurred_at is not None]
    start, end = min(times) - LIST_BEFORE, max(times) + LIST_AFTER
    platform = calls[0][0]
    guess = -(-len(calls) // LIST_PAGE_GUESS)  # pages the window likely holds: all asked for at once
    try:
        pages = list(pool.map(lambda page: api.changed_orders(start, end, page), range(guess)))
        total, size = pages[0].total, pages[0].page_size
        count = -(-total // size)
        if count > guess and total <= LIST_CROWDING * len(calls) + size:
            pages.extend(pool.map(lambda page: api.changed_orders(start, end, page), range(guess, count)))
    except (ApiError, PayloadError) as exc:
        # Listing only saves calls: whatever it failed to bring is fetched order by order.
        log.info("normalise: %s listing %s..%s failed (%s); fetching one by one", platform, start, end, exc)
        return {}
    return {(o.shop_code, o.platform_order_id): o for page in pages for o in page.orders}


def _fetch(platform: str, number: str, api: Any, group: list[_Msg]) -> CanonicalOrder | Outcome | str:
    """One order through its platform's API: the order, an exception outcome, or a reason to retry later."""
    shop_code = group[0].shop_code
    try:
        order: CanonicalOrder = api.fetch_order(shop_code, number)
        return order
    except ApiError as exc:
        if exc.retryable:
            return _clip(f"{platform} order {number}: {exc}")
        return _exception(group[0], "fetch_failed", f"{platform} order {number}: {exc}")
    except PayloadError as exc:
        return _exception(group[0], "fetch_failed", f"{platform} order {number}: unreadable: {exc}")
    except Exception as exc:  # an adapter's bug must not cost the other messages their turn
        log.exception("%s order %s: fetch failed", platform, number)
        return _exception(group[0], "fetch_failed", f"{platform} order {number}: {type(exc).__name__}: {exc}")


def _settle(group: list[_Msg], result: CanonicalOrder | Outcome | str) -> None:
    for m in group:
        if isinstance(result, CanonicalOrder):
            m.order = result
        elif isinstance(result, Outcome):
            m.final = Outcome(m.id, result.status, None, result.reason, result.kind, result.payload)
        else:
            m.retry = result


def _apply(eng: Engine, msgs: list[_Msg], sealer: Sealer) -> Summary:
    now = _utcnow()
    with db.session_scope(eng) as session:
        held = _lock(session, [m.id for m in msgs])
        mine = [m for m in msgs if m.id in held]
        outcomes: dict[int, Outcome] = {m.id: m.final for m in mine if m.final is not None}
        retry = {m.id: m for m in mine if m.final is None and m.retry is not None}
        ready = [m for m in mine if m.final is None and m.retry is None and m.order is not None]
        items, failed = _incoming(session, ready)
        outcomes.update(failed)
        if items:
            outcomes.update({o.ref: o for o in _converge_isolated(session, items, sealer, now)})
        for m in retry.values():
            if m.attempts + 1 >= MAX_ATTEMPTS:
                outcomes[m.id] = _exception(
                    m,
                    "fetch_failed",
                    f"gave up after {m.attempts + 1} attempts: {m.retry}",
                    attempts=m.attempts + 1,
                )
        _write(session, mine, outcomes, retry, now)
    counts: dict[InboxStatus, int] = defaultdict(int)
    for o in outcomes.values():
        counts[o.status] += 1
    return Summary(
        normalised=counts[InboxStatus.NORMALISED],
        ignored=counts[InboxStatus.IGNORED],
        exceptions=counts[InboxStatus.EXCEPTION],
        retrying=len([i for i in retry if i not in outcomes]),
        skipped=len(msgs) - len(mine),
    )


def _lock(session: Session, ids: list[int]) -> set[int]:
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE inbox SET id = id WHERE 0"))  # the write lock before reading
    held: set[int] = set()
    for i in range(0, len(ids), _CHUNK):
        held.update(
            session.scalars(
                select(InboxMessage.id)
                .where(
                    one_of(session, InboxMessage.id, ids[i : i + _CHUNK]),
                    InboxMessage.status == InboxStatus.RECEIVED,
                )
                .order_by(InboxMessage.id)
                .with_for_update(skip_locked=True)
            )
        )
    return held


def _incoming(session: Session, msgs: list[_Msg]) -> tuple[list[Incoming], dict[int, Outcome]]:
    """Map every line's platform SKU code (one query for all) and parse every address."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for m in msgs:
        assert m.order is not None and m.shop is not None
        for line in m.order.lines:
            wanted[m.shop[0]].add(line.platform_sku_code)
    shop_ids = sorted(wanted)
    codes = sorted({c for cs in wanted.values() for c in cs})
    mapping: dict[tuple[int, str], int] = {}
    for i in range(0, len(codes), _CHUNK):
        for shop_id, code, sku_id in session.execute(
            select(
                PlatformSkuMapping.shop_id, PlatformSkuMapping.platform_sku_code, PlatformSkuMapping.sku_id
            ).where(
                PlatformSkuMapping.shop_id.in_(shop_ids),
                one_of(session, PlatformSkuMapping.platform_sku_code, codes[i : i + _CHUNK]),
            )
        ):
            mapping[(shop_id, code)] = sku_id
    items: list[Incoming] = []
    failed: dict[int, Outcome] = {}
    for m in msgs:
        order, shop = m.order, m.shop
        assert order is not None and shop is not None
        if order.platform_order_id != m.platform_order_id and m.event != PULLED:
            failed[m.id] = _exception(
                m,
                "bad_order",
                f"asked {m.platform} for order {m.platform_order_id}, got order {order.platform_order_id}",
            )
            continue
        lines: list[tuple[int, int]] = []
        unknown: list[str] = []
        for line in order.lines:
            sku = mapping.get((shop[0], line.platform_sku_code))
            if sku is None:
                unknown.append(line.platform_sku_code)
            else:
                lines.append((sku, line.quantity))
        parsed, error = None, None
        if order.address is not None:
            try:
                parsed = parse_address(order.address)
            except AddressError as exc:
                error = str(exc)
        items.append(
            Incoming(
                ref=m.id,
                order=order,
                shop_id=shop[0],
                merchant_id=shop[1],
                lines=tuple(lines),
                unknown_codes=tuple(dict.fromkeys(unknown)),
                address=parsed,
                address_error=error,
            )
        )
    return items, failed


_RETRY_DB = (OperationalError,)  # the database itself failed: the whole job retries, nothing is marked


def _converge_isolated(
    session: Session, items: list[Incoming], sealer: Sealer, now: dt.datetime
) -> list[Outcome]:
    """All items in one savepoint; if that fails, each in its own, so one bad message spoils nothing else."""
    try:
        with session.begin_nested():
            return converge(session, items, sealer, now=now)
    except _RETRY_DB:
        raise
    except (IntegrityError, DBAPIError, IllegalTransition, ValueError, LookupError) as exc:
        log.warning("normalise: %d message(s) applied together failed (%s); one by one now", len(items), exc)
    out: list[Outcome] = []
    for item in items:
        try:
            with session.begin_nested():
                out.extend(converge(session, [item], sealer, now=now))
        except _RETRY_DB:
            raise
        except (IntegrityError, DBAPIError, IllegalTransition, ValueError, LookupError) as exc:
            o = item.order
            out.append(
                Outcome(
                    item.ref,
                    InboxStatus.EXCEPTION,
                    None,
                    _clip(
                        f"{o.platform} order {o.platform_order_id} could not be applied: "
                        f"{type(exc).__name__}: {exc}"
                    ),
                    "apply_failed",
                    {"platform_order_id": o.platform_order_id},
                )
            )
    return out


def _write(
    session: Session,
    msgs: list[_Msg],
    outcomes: Mapping[int, Outcome],
    retry: Mapping[int, _Msg],
    now: dt.datetime,
) -> None:
    """Every message's end (or its next attempt) in one UPDATE, and one INSERT of exception items."""
    inbox = cast(Table, InboxMessage.__table__)
    rows: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for m in msgs:
        o = outcomes.get(m.id)
        if o is None:
            if m.id in retry:
                rows.append(
                    {
                        "m_id": m.id,
                        "m_status": InboxStatus.RECEIVED,
                        "m_order": None,
                        "m_reason": _clip(f"attempt {m.attempts + 1}: {retry[m.id].retry}"),
                        "m_attempts": m.attempts + 1,
                    }
                )
            continue
        rows.append(
            {
                "m_id": m.id,
                "m_status": o.status,
                "m_order": o.order_id,
                "m_reason": None if o.reason is None else _clip(o.reason),
                "m_attempts": m.attempts + (1 if m.id in retry else 0),
            }
        )
        if o.status == InboxStatus.EXCEPTION:
            items.append(
                {
                    "kind": o.kind or "exception",
                    "subject": f"inbox {m.id}",
                    "reason": _clip(o.reason or o.kind or "exception"),
                    "payload": {
                        "inbox_id": m.id,
                        "platform": m.platform,
                        "message_id": m.message_id,
                        "shop_code": m.shop_code,
                        "platform_order_id": m.platform_order_id,
                        **o.payload,
                    },
                    "status": "open",
                    "created_at": now,
                }
            )
    if rows and session.get_bind().dialect.name == "postgresql":
        # One statement over arrays, not one per row.
        session.execute(
            text(
                "UPDATE inbox SET status = v.status, order_id = v.order_id, reason = v.reason, "
                "attempts = v.attempts FROM unnest(CAST(:ids AS BIGINT[]), CAST(:statuses AS VARCHAR[]), "
                "CAST(:orders AS BIGINT[]), CAST(:reasons AS VARCHAR[]), CAST(:attempts AS INTEGER[])) "
                "AS v(id, status, order_id, reason, attempts) "
                "WHERE inbox.id = v.id AND inbox.status = :received"
            ),
            {
                "ids": [r["m_id"] for r in rows],
                "statuses": [str(InboxStatus(r["m_status"]).value) for r in rows],
                "orders": [r["m_order"] for r in rows],
                "reasons": [r["m_reason"] for r in rows],
                "attempts": [r["m_attempts"] for r in rows],
                "received": InboxStatus.RECEIVED.value,
            },
        )
    elif rows:
        session.execute(
            update(inbox)
            .where(inbox.c.id == bindparam("m_id"), inbox.c.status == InboxStatus.RECEIVED)
            .values(
                status=bindparam("m_status"),
                order_id=bindparam("m_order"),
                reason=bindparam("m_reason"),
                attempts=bindparam("m_attempts"),
            ),
            rows,
        )
    if items:
        session.execute(insert(ExceptionItem), items)


# --- putting messages back -------------------------------------------------------------------------------


def enqueue(session: Session, ids: Iterable[int]) -> int:
    """Outbox jobs ``normalise_inbox`` for ``ids``, :data:`IDS_PER_JOB` a job; returns the jobs written."""
    ordered = sorted(set(ids))
    for i in range(0, len(ordered), IDS_PER_JOB):
        outbox.enqueue(session, TASK, *ordered[i : i + IDS_PER_JOB])
    return -(-len(ordered) // IDS_PER_JOB)


def due_at(received_at: dt.datetime, attempts: int) -> dt.datetime:
    """When a received message's next attempt is due (see the module docstring)."""
    if attempts <= 0:
        return received_at + ORPHAN_AFTER
    wait: dt.timedelta = RETRY_BASE * (2**attempts - 1)
    return received_at + wait


def requeue_due(
    session: Session,
    *,
    now: dt.datetime | None = None,
    connection: redis.Redis | None = None,
    queue: str = "intake",
    limit: int = SWEEP_LIMIT,
) -> int:
    """Enqueue the received messages whose next attempt is due (retries, and rows whose job was lost).

    With ``connection``, nothing happens while the intake queue holds a backlog (the rows are in it).
    Returns the number of messages enqueued.
    """
    if connection is not None:
        from rq import Queue

        if Queue(queue, connection=connection).count > BUSY_QUEUE:
            return 0
    now = now or _utcnow()
    rows = session.execute(
        select(InboxMessage.id, InboxMessage.received_at, InboxMessage.attempts)
        .where(
            InboxMessage.status == InboxStatus.RECEIVED,
            InboxMessage.received_at <= now - min(ORPHAN_AFTER, RETRY_BASE),
        )
        .order_by(InboxMessage.id)
        .limit(limit)
    ).all()
    due = [i for i, received, attempts in rows if due_at(received, attempts) <= now]
    if due:
        enqueue(session, due)
        log.info("normalise: %d received message(s) due again, enqueued", len(due))
    return len(due)


def requeue(session: Session, inbox_ids: Sequence[int]) -> int:
    """Put messages in ``exception`` back to ``received`` (after the cause was fixed) and enqueue them.

    Their open exception items are resolved. Returns how many were put back.
    """
    ids = sorted(set(inbox_ids))
    back: list[int] = []
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        back.extend(
            session.scalars(
                update(InboxMessage)
                .where(InboxMessage.id.in_(chunk), InboxMessage.status == InboxStatus.EXCEPTION)
                .values(status=InboxStatus.RECEIVED, reason=None, attempts=0)
                .returning(InboxMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
    subjects = [f"inbox {i}" for i in back]
    for i in range(0, len(subjects), _CHUNK):
        session.execute(
            update(ExceptionItem)
            .where(ExceptionItem.subject.in_(subjects[i : i + _CHUNK]), ExceptionItem.status == "open")
            .values(status="resolved")
            .execution_options(synchronize_session=False)
        )
    enqueue(session, back)
    return len(back)
