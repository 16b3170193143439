"""Apply canonical orders to the database so that events arriving out of order converge to the platform's
true state.

An order is upserted by (platform, shop, platform order id). Each order remembers the platform's
``updated_at`` of the last snapshot applied (``orders.platform_updated_at``): an older snapshot never
overwrites a newer one, so "paid" arriving before "created", or "cancelled" before "paid", end the same as
the events in order. Several snapshots of one order in one call: the newest wins (at equal times, the one
further along: cancelled > completed > shipped > paid > created).

Platform status → the order state machine (:data:`fulfil.domain.states.ORDER`; no status is written directly):

- created → a new order in ``created`` (its ship-by provisional: 48 h after creation).
- paid → ``PAY`` (``paid_at``; ship-by = the platform's promise if it states one, pre-sale, else paid + 48 h).
  A paid snapshot without ``paid_at`` is paid at its ``updated_at``.
- shipped / completed → if we shipped it, nothing; an order new to us is recorded as ``shipped`` /
  ``delivered`` (there is nothing to make); an order of ours not shipped yet is left as it is and flagged for
  operations (``shipped_outside_belt``): the platform says someone else shipped it.
- cancelled → ``CANCEL``. Before production (created, paid, batched, allocated) its capacity is freed: its
  allocation decisions are deleted, its stock reservations released, its parcels cancelled, the planned
  (not started) work orders shrunk by its pieces — never below the style's minimum lot while other orders
  still need the lot; a lot no order needs any more is cancelled. After production started (in production,
  packed — or any of its pieces on a work order already started) it is cancelled too and flagged for
  operations (``cancelled_after_production_started``); its goods become the owner's stock: pieces made or
  being made are added to the ordering merchant's stock in the shared warehouse nearest the workshop, pieces
  already picked from stock (their parcel packed) go back to the stock owner's shelf in that warehouse.
  Added at the cancellation, so the planner may count on them as soon as the lot is done. A cancellation of
  an order already shipped is flagged (``cancelled_after_shipment``): that is a return.
- An address change before shipment updates the sealed receiver, province and city; if the province changed
  after the order was planned, operations are told (``address_changed_after_planning``: its parcel was priced
  for the old province).

A new order is written once, born in the state the machine's table gives ``created`` under the platform's
event (paid: ``PAY``, cancelled: ``CANCEL``): no second UPDATE for a row just written.

Cancellations that touch planned orders take the planning lock (PostgreSQL advisory lock; SQLite's write
lock is taken first in any case), so a batch is never planned from a snapshot in which a cancelled order
still waits. Rows move in bulk: one query for the existing orders, one insert for the new ones and one for
their lines, one UPDATE per kind of change.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fulfil.belt.geo import haversine_km
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    ExceptionItem,
    InboxStatus,
    Order,
    OrderLine,
    Parcel,
    Platform,
    SharedWarehouse,
    SiteKind,
    Stock,
    Style,
    WorkOrder,
    Workshop,
)
from fulfil.domain.states import (
    ORDER,
    PARCEL,
    WORK_ORDER,
    BatchState,
    OrderEvent,
    OrderState,
    ParcelEvent,
    ParcelState,
    WorkOrderEvent,
    WorkOrderState,
)
from fulfil.intake.address import ParsedAddress
from fulfil.pii import Receiver, Sealer
from fulfil.planning.jobs import take_planning_lock
from integrations.base import CanonicalOrder, OrderStatus

SHIP_WITHIN = dt.timedelta(hours=48)  # the platforms' standard promise (Douyin): 48 h from payment
ID_CHUNK = 5000
REASON_CHARS = 512

_RANK = {
    OrderStatus.CREATED: 0,
    OrderStatus.PAID: 1,
    OrderStatus.SHIPPED: 2,
    OrderStatus.COMPLETED: 3,
    OrderStatus.CANCELLED: 4,
}
_S = OrderState
_PRE_SHIPMENT = (_S.CREATED, _S.PAID, _S.BATCHED, _S.ALLOCATED, _S.IN_PRODUCTION, _S.PACKED)
_PLANNED = (_S.BATCHED, _S.ALLOCATED, _S.IN_PRODUCTION, _S.PACKED)
_STARTED = (_S.IN_PRODUCTION, _S.PACKED)
_SHIPPED = (_S.SHIPPED, _S.DELIVERED)
_NEW_STATE = {OrderStatus.SHIPPED: _S.SHIPPED, OrderStatus.COMPLETED: _S.DELIVERED}

Key = tuple[str, int, str]  # platform, shop id, platform order id


@dataclass(frozen=True)
class Incoming:
    """A canonical order ready to apply: its shop resolved, its lines mapped, its address parsed."""

    ref: int  # the caller's reference for the outcome (an inbox id)
    order: CanonicalOrder
    shop_id: int
    merchant_id: int
    lines: tuple[tuple[int, int], ...]  # (SKU id, quantity) of the lines whose platform code is mapped
    unknown_codes: tuple[str, ...] = ()  # platform SKU codes with no mapping
    address: ParsedAddress | None = None  # None: the platform gave none (or see address_error)
    address_error: str | None = None  # the platform gave one that cannot be shipped to

    @property
    def key(self) -> Key:
        return (Platform(self.order.platform).value, self.shop_id, self.order.platform_order_id)


@dataclass(frozen=True)
class Outcome:
    """What became of one :class:`Incoming`: normalised (with its order), ignored, or an exception."""

    ref: int
    status: InboxStatus
    order_id: int | None = None
    reason: str | None = None
    kind: str | None = None  # the exception kind, with status EXCEPTION
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Existing:
    id: int
    status: OrderState
    updated_at: dt.datetime | None
    province: str
    merchant_id: int


@dataclass
class _Plan:
    """Everything one call writes, gathered first so that each kind of change is one statement."""

    now: dt.datetime
    new: list[tuple[Incoming, OrderState]] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)  # per existing order: columns to set
    pay: list[int] = field(default_factory=list)
    cancel: dict[int, Incoming] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)  # exception items about orders


def one_of(where: Session | Connection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:array)``: one parameter instead of hundreds, so
    neither SQLAlchemy nor the driver builds and parses a statement the length of the list."""
    dialect = where.dialect if isinstance(where, Connection) else where.get_bind().dialect
    if dialect.name == "postgresql":
        kind: Any = BigInteger if values and isinstance(values[0], int) else String
        return cast(ColumnElement[bool], column == any_(bindparam(None, list(values), type_=ARRAY(kind))))
    return cast(ColumnElement[bool], column.in_(list(values)))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _clip(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _newest_first(item: tuple[int, Incoming]) -> tuple[dt.datetime, int, int]:
    pos, inc = item
    return (inc.order.updated_at, _RANK[OrderStatus(inc.order.status)], pos)


def ship_by(order: CanonicalOrder, paid_at: dt.datetime | None) -> dt.datetime:
    if order.ship_by is not None:
        return order.ship_by
    return (paid_at or order.created_at) + SHIP_WITHIN


def converge(
    session: Session, items: Sequence[Incoming], sealer: Sealer, *, now: dt.datetime | None = None
) -> list[Outcome]:
    """Apply ``items`` in ``session``'s transaction; one :class:`Outcome` per item, in order.

    Raises on database errors (the caller rolls back to its savepoint and retries item by item).
    """
    if not items:
        return []
    plan = _Plan(now or _utcnow())
    if session.get_bind().dialect.name == "sqlite":
        # SQLite's write lock before the first read: nothing changes what we read until we commit.
        session.execute(text("UPDATE orders SET id = id WHERE 0"))

    groups: dict[Key, list[tuple[int, Incoming]]] = defaultdict(list)
    for pos, inc in enumerate(items):
        groups[inc.key].append((pos, inc))
    winners = {key: max(group, key=_newest_first)[1] for key, group in groups.items()}

    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and any(w.order.status == OrderStatus.CANCELLED for w in winners.values()):
        # Cancelling a planned order frees what a planner may be spending right now: take the planning
        # lock first (before any order row lock, as the planner does), then lock the rows.
        seen = _existing(session, list(winners), lock=False)
        if any(
            w.order.status == OrderStatus.CANCELLED and k in seen and seen[k].status in (_S.PAID, *_PLANNED)
            for k, w in winners.items()
        ):
            take_planning_lock(session)
    existing = _existing(session, list(winners), lock=True)

    decided: dict[Key, Outcome] = {}
    for key, inc in winners.items():
        old = existing.get(key)
        decided[key] = _decide_new(plan, inc) if old is None else _decide_existing(plan, inc, old, sealer)

    new_ids = _insert_new(session, plan, sealer)
    for key, order_id in new_ids.items():
        d = decided[key]
        decided[key] = Outcome(d.ref, d.status, order_id, d.reason, d.kind, d.payload)
    _apply_meta(session, plan.meta)
    if plan.pay:
        ORDER.fire_ids(session, Order, plan.pay, OrderEvent.PAY)
    if plan.cancel:
        cancel_orders(session, plan.cancel, plan.now, plan.flags)
    _open_flags(session, plan.flags)

    out: list[Outcome] = []
    for inc in items:
        win = winners[inc.key]
        d = decided[inc.key]
        if inc is win:
            out.append(d)
        elif inc.order.updated_at < win.order.updated_at and d.order_id is not None:
            out.append(
                Outcome(
                    inc.ref, InboxStatus.IGNORED, d.order_id, "an older snapshot than another applied with it"
                )
            )
        else:
            out.append(Outcome(inc.ref, d.status, d.order_id, d.reason, d.kind, d.payload))
    return out


# --- reading ---------------------------------------------------------------------------------------------


def _existing(session: Session, keys: list[Key], *, lock: bool) -> dict[Key, _Existing]:
    """The orders already stored for ``keys``; with ``lock``, their rows locked (PostgreSQL) in id order."""
    by_platform: dict[str, list[Key]] = defaultdict(list)
    for key in keys:
        by_platform[key[0]].append(key)
    wanted = set(keys)
    found: dict[Key, _Existing] = {}
    for platform, pkeys in by_platform.items():
        shops = sorted({k[1] for k in pkeys})
        numbers = sorted({k[2] for k in pkeys})
        for i in range(0, len(numbers), ID_CHUNK):
            query = (
                select(
                    Order.id,
                    Order.shop_id,
                    Order.platform_order_id,
                    Order.status,
                    Order.platform_updated_at,
                    Order.province,
                    Order.merchant_id,
                )
                .where(
                    Order.platform == Platform(platform),
                    Order.shop_id.in_(shops),
                    one_of(session, Order.platform_order_id, numbers[i : i + ID_CHUNK]),
                )
                .order_by(Order.id)
            )
            if lock:
                query = query.with_for_update()
            for oid, shop_id, number, status, updated, province, merchant in session.execute(query):
                key = (platform, shop_id, number)
                if key in wanted:
                    found[key] = _Existing(oid, OrderState(status), updated, province, merchant)
    return found


# --- deciding --------------------------------------------------------------------------------------------


def _exception(inc: Incoming, kind: str, reason: str, **payload: Any) -> Outcome:
    return Outcome(inc.ref, InboxStatus.EXCEPTION, None, _clip(reason), kind, payload)


def _lines_problem(inc: Incoming) -> Outcome | None:
    o = inc.order
    if inc.unknown_codes:
        codes = ", ".join(repr(c) for c in inc.unknown_codes)
        return _exception(
            inc,
            "unknown_sku",
            f"{o.platform} order {o.platform_order_id}: no SKU mapped for platform SKU code(s) {codes} "
            f"of shop {o.shop_code}",
            codes=list(inc.unknown_codes),
            platform_order_id=o.platform_order_id,
        )
    if not inc.lines:
        return _exception(
            inc, "bad_order", f"{o.platform} order {o.platform_order_id}: the order has no lines"
        )
    bad = [q for _, q in inc.lines if q <= 0]
    if bad:
        return _exception(
            inc,
            "bad_order",
            f"{o.platform} order {o.platform_order_id}: line quantities must be positive, got {bad}",
        )
    return None


def _address_problem(inc: Incoming, required: bool) -> Outcome | None:
    o = inc.order
    if inc.address_error is not None:
        return _exception(
            inc,
            "bad_address",
            f"{o.platform} order {o.platform_order_id}: {inc.address_error}",
            platform_order_id=o.platform_order_id,
        )
    if required and inc.address is None:
        return _exception(
            inc,
            "bad_address",
            f"{o.platform} order {o.platform_order_id} is {o.status} but the platform gave no address",
            platform_order_id=o.platform_order_id,
        )
    return None


def _decide_new(plan: _Plan, inc: Incoming) -> Outcome:
    status = OrderStatus(inc.order.status)
    reason = None
    if status in (OrderStatus.CREATED, OrderStatus.PAID):
        problem = _lines_problem(inc) or _address_problem(inc, required=status == OrderStatus.PAID)
        if problem is not None:
            return problem
        state = _born(status)
    else:
        # Nothing will be made for it: record what maps, say what does not.
        state = _born(status)
        notes = [f"first seen {status}"]
        if inc.unknown_codes:
            notes.append(f"lines with unmapped SKU codes not recorded: {', '.join(inc.unknown_codes)}")
        if inc.address_error is not None:
            notes.append(f"address not recorded: {inc.address_error}")
        reason = "; ".join(notes)
    plan.new.append((inc, state))
    return Outcome(inc.ref, InboxStatus.NORMALISED, None, reason)


def _decide_existing(plan: _Plan, inc: Incoming, old: _Existing, sealer: Sealer) -> Outcome:
    o = inc.order
    status = OrderStatus(o.status)
    if old.updated_at is not None and (
        o.updated_at < old.updated_at or (o.updated_at == old.updated_at and not _further(status, old.status))
    ):
        return Outcome(inc.ref, InboxStatus.IGNORED, old.id, "an older (or the same) snapshot than applied")
    meta: dict[str, Any] = {"id": old.id, "platform_updated_at": o.updated_at}
    outcome = Outcome(inc.ref, InboxStatus.NORMALISED, old.id)

    if status == OrderStatus.CANCELLED:
        if old.status in _PRE_SHIPMENT:
            plan.cancel[old.id] = inc
        elif old.status == _S.CANCELLED:
            outcome = Outcome(inc.ref, InboxStatus.IGNORED, old.id, "already cancelled")
        else:
            plan.flags.append(
                _flag(
                    plan,
                    "cancelled_after_shipment",
                    old.id,
                    f"{o.platform} order {o.platform_order_id} was cancelled on the platform after we "
                    f"shipped it ({old.status}): a return to handle",
                    platform_order_id=o.platform_order_id,
                    cancel_reason=o.cancel_reason,
                )
            )
        plan.meta.append(meta)
        return outcome

    if old.status == _S.CANCELLED or (
        old.status in _SHIPPED and status in (OrderStatus.CREATED, OrderStatus.PAID)
    ):
        if old.status in _SHIPPED:  # a stale-looking snapshot: we are further along than it says
            plan.meta.append(meta)
            return Outcome(inc.ref, InboxStatus.IGNORED, old.id, f"the order is already {old.status} here")
        return _exception(
            inc,
            "state_conflict",
            f"{o.platform} order {o.platform_order_id} is cancelled here but {status} on the platform",
            order_id=old.id,
        )

    if status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
        if old.status not in _SHIPPED:
            plan.flags.append(
                _flag(
                    plan,
                    "shipped_outside_belt",
                    old.id,
                    f"{o.platform} order {o.platform_order_id} is {status} on the platform but {old.status} "
                    "here: someone else shipped it; stop making it or cancel it",
                    platform_order_id=o.platform_order_id,
                )
            )
        plan.meta.append(meta)
        return outcome

    # created or paid, on an order of ours before shipment: the address may have changed
    if old.status in _PRE_SHIPMENT and (inc.address is not None or inc.address_error is not None):
        required = status == OrderStatus.PAID and old.status == _S.CREATED
        problem = _address_problem(inc, required=required)
        if problem is not None:
            return problem
        assert inc.address is not None
        meta.update(_address_columns(inc.address, sealer))
        if inc.address.province != old.province and old.status in _PLANNED[1:]:
            plan.flags.append(
                _flag(
                    plan,
                    "address_changed_after_planning",
                    old.id,
                    f"{o.platform} order {o.platform_order_id}: the receiver moved from province "
                    f"{old.province} to {inc.address.province} after planning; its parcel was priced for "
                    "the old one",
                    platform_order_id=o.platform_order_id,
                )
            )
    elif status == OrderStatus.PAID and old.status == _S.CREATED:
        problem = _address_problem(inc, required=True)
        if problem is not None:
            return problem
    if status == OrderStatus.PAID and old.status == _S.CREATED:
        paid_at = o.paid_at or o.updated_at
        meta.update(paid_at=paid_at, ship_by=ship_by(o, paid_at), presale=o.presale)
        plan.pay.append(old.id)
    plan.meta.append(meta)
    return outcome


def _born(status: OrderStatus) -> OrderState:
    """The state a new order is born in: ``created`` moved by the machine's own table (``PAY``, ``CANCEL``) —
    no UPDATE needed for a row not written yet. Shipped and completed have no path from ``created`` (we did
    not ship it): such an order is recorded as the platform says."""
    if status == OrderStatus.PAID:
        return ORDER.next(_S.CREATED, OrderEvent.PAY)
    if status == OrderStatus.CANCELLED:
        return ORDER.next(_S.CREATED, OrderEvent.CANCEL)
    return _NEW_STATE.get(status, _S.CREATED)


def _further(status: OrderStatus, ours: OrderState) -> bool:
    """At equal platform times: is the platform's status further along than ours?"""
    if ours == _S.CANCELLED:
        return False
    our_rank = {_S.CREATED: 0, _S.SHIPPED: 2, _S.DELIVERED: 3}.get(ours, 1)
    return _RANK[status] > our_rank


def _address_columns(address: ParsedAddress, sealer: Sealer) -> dict[str, Any]:
    return {
        "province": address.province,
        "city": address.city,
        "country": address.country,
        "receiver_sealed": sealer.seal(address.receiver),
    }


def _flag(plan: _Plan, kind: str, order_id: int, reason: str, **payload: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": f"order {order_id}",
        "reason": _clip(reason),
        "payload": {"order_id": order_id, **payload},
        "status": "open",
        "created_at": plan.now,
    }


# --- writing ---------------------------------------------------------------------------------------------


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    names = list(rows[0])
    if session.get_bind().dialect.name == "postgresql":
        import psycopg

        raw = session.connection().connection.driver_connection
        assert raw is not None
        statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
        try:
            with raw.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[n] for n in names])
        except psycopg.Error as exc:
            # The driver's error as SQLAlchemy's (IntegrityError, OperationalError ...), as for any statement.
            raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    else:
        session.execute(insert(table), rows)


def _insert_new(session: Session, plan: _Plan, sealer: Sealer) -> dict[Key, int]:
    if not plan.new:
        return {}
    # In key order: two jobs inserting the same new orders wait on each other in one order, never in a cycle.
    plan.new.sort(key=lambda new: new[0].key)
    empty = sealer.seal(Receiver("", "", ""))
    rows: list[dict[str, Any]] = []
    for inc, state in plan.new:
        o = inc.order
        paid_at = (o.paid_at or o.updated_at) if o.status == OrderStatus.PAID else o.paid_at
        address = inc.address if inc.address_error is None else None
        rows.append(
            {
                "platform": Platform(o.platform),
                "shop_id": inc.shop_id,
                "platform_order_id": o.platform_order_id,
                "merchant_id": inc.merchant_id,
                "status": state,
                "created_at": o.created_at,
                "paid_at": paid_at,
                "ship_by": ship_by(o, paid_at),
                "presale": o.presale,
                "province": address.province if address else "",
                "city": address.city if address else "",
                "country": address.country if address else "CN",
                "receiver_sealed": sealer.seal(address.receiver) if address else empty,
                "platform_updated_at": o.updated_at,
            }
        )
    ids = _insert_orders(session, rows)
    line_rows = [
        {"order_id": oid, "sku_id": sku, "quantity": qty}
        for oid, (inc, _) in zip(ids, plan.new, strict=True)
        for sku, qty in inc.lines
        if qty > 0
    ]
    bulk_insert(session, cast(Table, OrderLine.__table__), line_rows)
    out: dict[Key, int] = {}
    for oid, (inc, _) in zip(ids, plan.new, strict=True):
        out[inc.key] = oid
    return out


def _insert_orders(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert orders, returning their ids in row order. PostgreSQL: ids drawn from the sequence in one query,
    then one COPY (a multi-row INSERT of thousands of rows costs more in building the statement than in
    running it)."""
    if session.get_bind().dialect.name != "postgresql":
        return list(
            session.execute(insert(Order).returning(Order.id, sort_by_parameter_order=True), rows).scalars()
        )
    ids = [
        int(i)
        for i in session.execute(
            text("SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, :n)"),
            {"n": len(rows)},
        ).scalars()
    ]
    plain = [
        {**row, "id": oid, "platform": str(row["platform"].value), "status": str(row["status"].value)}
        for oid, row in zip(ids, rows, strict=True)
    ]
    bulk_insert(session, cast(Table, Order.__table__), plain)
    return ids


def _apply_meta(session: Session, meta: list[dict[str, Any]]) -> None:
    """One executemany UPDATE per set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in meta:
        by_columns[tuple(sorted(row))].append(row)
    table = cast(Table, Order.__table__)
    for columns, rows in by_columns.items():
        values: dict[str, Any] = {c: bindparam(f"v_{c}") for c in columns if c != "id"}
        stmt = update(table).where(table.c.id == bindparam("v_id")).values(values)
        session.execute(stmt, [{f"v_{c}": r[c] for c in columns} for r in rows])


def _open_flags(session: Session, flags: list[dict[str, Any]]) -> None:
    """Open the exception items about orders, except one already open for the same order and kind."""
    if not flags:
        return
    subjects = sorted({f["subject"] for f in flags})
    open_now: set[tuple[str, str]] = set()
    for i in range(0, len(subjects), ID_CHUNK):
        open_now.update(
            (k, s)
            for k, s in session.execute(
                select(ExceptionItem.kind, ExceptionItem.subject).where(
                    ExceptionItem.status == "open", ExceptionItem.subject.in_(subjects[i : i + ID_CHUNK])
                )
            )
        )
    rows = []
    for f in flags:
        if (f["kind"], f["subject"]) not in open_now:
            open_now.add((f["kind"], f["subject"]))
            rows.append(f)
    if rows:
        session.execute(insert(ExceptionItem), rows)


# --- cancelling ------------------------------------------------------------------------------------------


@dataclass
class _Goods:
    """Pieces that become stock: (warehouse, owner, SKU) -> quantity."""

    to_shelf: dict[tuple[int, int, int], int] = field(default_factory=lambda: defaultdict(int))
    per_order: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))


def cancel_orders(
    session: Session, orders: Mapping[int, Incoming], now: dt.datetime, flags: list[dict[str, Any]]
) -> None:
    """Cancel ``orders`` (id -> the snapshot that cancels it) and free what they held, in bulk.

    See the module docstring for what is freed, and what becomes the owner's stock after production started.
    The caller holds the planning lock where planned orders are among them.
    """
    ids = sorted(orders)
    status = {
        oid: OrderState(s)
        for i in range(0, len(ids), ID_CHUNK)
        for oid, s in session.execute(
            select(Order.id, Order.status).where(Order.id.in_(ids[i : i + ID_CHUNK]))
        )
    }
    decisions = [
        row
        for i in range(0, len(ids), ID_CHUNK)
        for row in session.execute(
            select(
                AllocationDecision.id,
                AllocationDecision.source,
                AllocationDecision.warehouse_id,
                AllocationDecision.workshop_id,
                AllocationDecision.stock_owner_id,
                AllocationDecision.work_order_id,
                AllocationDecision.quantity,
                OrderLine.order_id,
                OrderLine.sku_id,
                Order.merchant_id,
            )
            .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(OrderLine.order_id.in_(ids[i : i + ID_CHUNK]))
        )
    ]
    goods = _Goods()
    release: dict[tuple[int, int, int], int] = defaultdict(int)
    if decisions:
        _free_work_orders(session, decisions, goods)
        _free_stock(session, decisions, goods, release)
        _apply_stock(session, release, goods.to_shelf)
        decision_ids = [d.id for d in decisions]
        for i in range(0, len(decision_ids), ID_CHUNK):
            session.execute(
                delete(AllocationDecision)
                .where(AllocationDecision.id.in_(decision_ids[i : i + ID_CHUNK]))
                .execution_options(synchronize_session=False)
            )
    for i in range(0, len(ids), ID_CHUNK):
        chunk = ids[i : i + ID_CHUNK]
        PARCEL.fire_where(
            session,
            Parcel,
            Parcel.order_id.in_(chunk) & Parcel.status.in_([ParcelState.PLANNED, ParcelState.PACKED]),
            ParcelEvent.CANCEL,
        )
        _shrink_open_batches(session, chunk)
    ORDER.fire_ids(session, Order, ids, OrderEvent.CANCEL)

    for oid in ids:
        moved = goods.per_order.get(oid, [])
        if status[oid] not in _STARTED and not moved:
            continue
        o = orders[oid].order
        pieces = sum(m["quantity"] for m in moved)
        where = ", ".join(sorted({m["warehouse"] for m in moved})) or "no warehouse"
        flags.append(
            {
                "kind": "cancelled_after_production_started",
                "subject": f"order {oid}",
                "reason": _clip(
                    f"{o.platform} order {o.platform_order_id} was cancelled on the platform after "
                    f"production started ({status[oid]}); {pieces} piece(s) become the owner's stock at "
                    f"{where}"
                ),
                "payload": {
                    "order_id": oid,
                    "platform_order_id": o.platform_order_id,
                    "cancel_reason": o.cancel_reason,
                    "state": str(status[oid]),
                    "goods_to_stock": moved,
                },
                "status": "open",
                "created_at": now,
            }
        )


def _free_work_orders(session: Session, decisions: Sequence[Any], goods: _Goods) -> None:
    """Shrink (or cancel) the planned work orders the decisions draw on; pieces on started ones -> stock."""
    ours: dict[int, int] = defaultdict(int)
    for d in decisions:
        if d.work_order_id is not None:
            ours[d.work_order_id] += d.quantity
    if not ours:
        return
    wo_ids = sorted(ours)
    lots = {
        row.id: row
        for i in range(0, len(wo_ids), ID_CHUNK)
        for row in session.execute(
            select(
                WorkOrder.id,
                WorkOrder.status,
                WorkOrder.quantity,
                WorkOrder.regular_minutes,
                WorkOrder.overtime_minutes,
                WorkOrder.workshop_id,
                Style.min_lot,
            )
            .join(Style, Style.id == WorkOrder.style_id)
            .where(WorkOrder.id.in_(wo_ids[i : i + ID_CHUNK]))
            .order_by(WorkOrder.id)
            .with_for_update(of=WorkOrder)
        )
    }
    taken = {
        wo: int(q)
        for i in range(0, len(wo_ids), ID_CHUNK)
        for wo, q in session.execute(
            select(AllocationDecision.work_order_id, func.sum(AllocationDecision.quantity))
            .where(AllocationDecision.work_order_id.in_(wo_ids[i : i + ID_CHUNK]))
            .group_by(AllocationDecision.work_order_id)
        )
    }
    shrink: list[dict[str, Any]] = []
    to_cancel: list[int] = []
    started: set[int] = set()
    for wo, lot in lots.items():
        state = WorkOrderState(lot.status)
        if state == WorkOrderState.PLANNED:
            left = taken.get(wo, 0) - ours[wo]
            if left <= 0:
                to_cancel.append(wo)
                continue
            quantity = min(lot.quantity, max(left, lot.min_lot))
            if quantity < lot.quantity:
                total = lot.regular_minutes + lot.overtime_minutes
                cut = total * (lot.quantity - quantity) / lot.quantity
                overtime_cut = min(lot.overtime_minutes, cut)  # the dearer minutes go first
                shrink.append(
                    {
                        "w_id": wo,
                        "w_q": quantity,
                        "w_ot": lot.overtime_minutes - overtime_cut,
                        "w_reg": max(lot.regular_minutes - (cut - overtime_cut), 0.0),
                    }
                )
        elif state != WorkOrderState.CANCELLED:
            started.add(wo)
    if shrink:
        wo_table = cast(Table, WorkOrder.__table__)
        session.execute(
            update(wo_table)
            .where(wo_table.c.id == bindparam("w_id"), wo_table.c.status == WorkOrderState.PLANNED)
            .values(
                quantity=bindparam("w_q"),
                regular_minutes=bindparam("w_reg"),
                overtime_minutes=bindparam("w_ot"),
            ),
            shrink,
        )
    if to_cancel:
        WORK_ORDER.fire_ids(session, WorkOrder, to_cancel, WorkOrderEvent.CANCEL)
    if not started:
        return
    # Pieces on a lot already started are made anyway: they become the ordering merchant's stock in the
    # shared warehouse nearest the workshop.
    nearest = _nearest_warehouses(session, {lots[wo].workshop_id for wo in started})
    for d in decisions:
        if d.work_order_id in started:
            found = nearest.get(lots[d.work_order_id].workshop_id)
            if found is None:
                goods.per_order[d.order_id].append(
                    {"sku_id": d.sku_id, "quantity": d.quantity, "warehouse": "no shared warehouse"}
                )
                continue
            wh_id, wh_code = found
            goods.to_shelf[(wh_id, d.merchant_id, d.sku_id)] += d.quantity
            goods.per_order[d.order_id].append(
                {"sku_id": d.sku_id, "quantity": d.quantity, "warehouse": wh_code, "made": True}
            )


def _nearest_warehouses(session: Session, workshop_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    warehouses = session.execute(
        select(SharedWarehouse.id, SharedWarehouse.code, SharedWarehouse.lon, SharedWarehouse.lat)
    ).all()
    if not warehouses:
        return {}
    shops = session.execute(
        select(Workshop.id, Workshop.lon, Workshop.lat).where(Workshop.id.in_(sorted(workshop_ids)))
    ).all()
    out: dict[int, tuple[int, str]] = {}
    for wid, lon, lat in shops:
        best = min(warehouses, key=lambda h: (haversine_km(lon, lat, h.lon, h.lat), h.id))
        out[wid] = (best.id, best.code)
    return out


def _free_stock(
    session: Session,
    decisions: Sequence[Any],
    goods: _Goods,
    release: dict[tuple[int, int, int], int],
) -> None:
    """Reservations of pieces not picked yet are released; picked pieces (parcel packed) go back on shelf."""
    from_stock = [d for d in decisions if SiteKind(d.source) == SiteKind.WAREHOUSE]
    if not from_stock:
        return
    order_ids = sorted({d.order_id for d in from_stock})
    packed = {
        (oid, wh)
        for i in range(0, len(order_ids), ID_CHUNK)
        for oid, wh in session.execute(
            select(Parcel.order_id, Parcel.warehouse_id).where(
                Parcel.order_id.in_(order_ids[i : i + ID_CHUNK]),
                Parcel.site_kind == SiteKind.WAREHOUSE,
                Parcel.status == ParcelState.PACKED,
            )
        )
    }
    codes: dict[int, str] = {
        i: c for i, c in session.execute(select(SharedWarehouse.id, SharedWarehouse.code))
    }
    for d in from_stock:
        owner = d.stock_owner_id if d.stock_owner_id is not None else d.merchant_id
        key = (d.warehouse_id, owner, d.sku_id)
        if (d.order_id, d.warehouse_id) in packed:
            goods.to_shelf[key] += d.quantity
            goods.per_order[d.order_id].append(
                {"sku_id": d.sku_id, "quantity": d.quantity, "warehouse": codes.get(d.warehouse_id, "?")}
            )
        else:
            release[key] += d.quantity


def _apply_stock(
    session: Session,
    release: Mapping[tuple[int, int, int], int],
    to_shelf: Mapping[tuple[int, int, int], int],
) -> None:
    stock = cast(Table, Stock.__table__)
    pk = (
        stock.c.warehouse_id == bindparam("s_w"),
        stock.c.owner_id == bindparam("s_o"),
        stock.c.sku_id == bindparam("s_k"),
    )
    if release:
        session.execute(
            update(stock).where(*pk).values(reserved=stock.c.reserved - bindparam("s_q")),
            [{"s_w": w, "s_o": o, "s_k": k, "s_q": q} for (w, o, k), q in sorted(release.items())],
        )
    if not to_shelf:
        return
    keys = sorted(to_shelf)
    present: set[tuple[int, int, int]] = set()
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        present.update(
            (w, o, k)
            for w, o, k in session.execute(
                select(Stock.warehouse_id, Stock.owner_id, Stock.sku_id)
                .where(
                    Stock.warehouse_id.in_({c[0] for c in chunk}),
                    Stock.owner_id.in_({c[1] for c in chunk}),
                    Stock.sku_id.in_({c[2] for c in chunk}),
                )
                .with_for_update()
            )
        )
    grow = [
        {"s_w": w, "s_o": o, "s_k": k, "s_q": to_shelf[(w, o, k)]}
        for (w, o, k) in keys
        if (w, o, k) in present
    ]
    if grow:
        session.execute(update(stock).where(*pk).values(on_hand=stock.c.on_hand + bindparam("s_q")), grow)
    fresh = [
        {"warehouse_id": w, "owner_id": o, "sku_id": k, "on_hand": to_shelf[(w, o, k)], "reserved": 0}
        for (w, o, k) in keys
        if (w, o, k) not in present
    ]
    if fresh:
        session.execute(insert(stock), fresh)


def _shrink_open_batches(session: Session, order_ids: list[int]) -> None:
    """An open batch counts its orders towards its size limit: a cancelled one no longer counts."""
    counts = session.execute(
        select(Order.batch_id, func.count())
        .join(Batch, Batch.id == Order.batch_id)
        .where(
            Order.id.in_(order_ids),
            Order.status == OrderState.BATCHED,
            Batch.status == BatchState.OPEN,
        )
        .group_by(Order.batch_id)
    ).all()
    if counts:
        batches = cast(Table, Batch.__table__)
        session.execute(
            update(batches)
            .where(batches.c.id == bindparam("b_id"), batches.c.order_count >= bindparam("b_n"))
            .values(order_count=batches.c.order_count - bindparam("b_n")),
            [{"b_id": b, "b_n": n} for b, n in counts],
        )
