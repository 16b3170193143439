"""Build the :class:`~solvers.allocation.AllocationProblem` of one batch from the database, columnar.

Every read is one SELECT into numpy columns; no ORM object is made per order or line. Order lines are
aggregated into demand cells (SKU × ordering merchant × destination province × due day); the lines, sorted
by cell and ship-by, stay here so :mod:`fulfil.planning.write` can give each line its share of the decisions.

Time: the belt works in its local calendar (China, UTC+8) while timestamps are naive UTC. Plan day 0 is the
local date on which the batch closed; goods made or picked on a plan day are ready for that evening's pickup
at :data:`READY_MINUTE` local time. A batch closing less than :data:`LEAD_MINUTES` before that plans from the
next day on.

Lots earlier batches planned (work orders not started yet) are open lots: they may grow, and their pieces
not taken by any order serve first. Capacity is what the calendar offers less what earlier batches' work
orders already took; warehouse handling
likewise less the lines earlier plans already take from stock that day; stock is on hand less reserved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Executable, func, select
from sqlalchemy.orm import Session

from fulfil.dbcolumns import read_columns
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    Merchant,
    Order,
    OrderLine,
    ProcessFamily,
    Qualification,
    SharedWarehouse,
    SiteKind,
    Sku,
    Stock,
    Style,
    WorkOrder,
    Workshop,
    WorkshopCapacity,
)
from fulfil.domain.states import OrderState, WorkOrderState
from fulfil.prices import price_tables
from solvers.allocation import AllocationProblem
from solvers.allocation.data import MINUTES_PER_DAY
from solvers.allocation.segments import positions

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

BELT_UTC_OFFSET = dt.timedelta(hours=8)
READY_MINUTE = 18 * 60  # local time at which a day's goods are ready for the evening pickup
LEAD_MINUTES = 4 * 60  # the least time between a batch closing and that day's goods being ready
LATE_DAYS = 3  # plan days after the last due day, where what fits nowhere on time goes late
# a piece shipped a day late: platforms fine late shipment and mark the shop down (Douyin compensates the
# buyer and counts it against the shop's score), so lateness costs more than most ways of making on time
LATE_FEN_PER_UNIT_DAY = 20_000
# an order shipped in two parcels where one would do: a second courier's first weight, and a buyer who gets
# half an order (and a platform that counts the second parcel's tracking number against the shop)
SPLIT_FEN_PER_PARCEL = 500
# a piece planned again somewhere else than the last plan said: the workshop or warehouse already told to
# expect it re-plans its day
CHURN_FEN_PER_UNIT = 200


class PlanningError(RuntimeError):
    """The batch cannot be planned as it stands; the message says why."""


@dataclass(frozen=True, eq=False)
class LoadedBatch:
    batch_id: int
    day0: dt.date  # local date of plan day 0
    problem: AllocationProblem
    # dense index -> database id
    merchant_ids: I64
    style_ids: I64
    sku_ids: I64
    family_ids: I64
    workshop_ids: I64
    warehouse_ids: I64
    provinces: list[str]
    # the batch's order lines, sorted by (cell, ship-by, line id)
    line_id: I64
    line_order: I64  # order id
    line_sku: I64  # SKU index
    line_quantity: I64
    line_cell: I64
    open_lot_work_order: I64  # the work order behind each of the problem's open lots
    # the batch's orders (sorted by id) and those that have no line at all
    order_ids: I64
    order_province: I64  # province index
    order_ship_by: npt.NDArray[np.datetime64]
    empty_orders: I64
    # couriers' price tables for pricing a parcel by its weight: [courier, province]; first_fen < 0: none
    courier_ids: I64
    price_first_weight_g: I64
    price_first_fen: I64
    price_additional_fen_per_kg: I64
    # per order line of the problem (orders of more than one piece), its index in the line arrays above
    listed_line: I64 = field(default_factory=lambda: np.empty(0, np.int64))

    def local_midnight_utc(self, day: int) -> dt.datetime:
        """The UTC time of local midnight at the start of plan day ``day``."""
        return dt.datetime.combine(self.day0 + dt.timedelta(days=day), dt.time()) - BELT_UTC_OFFSET

    def ready_at_utc(self, day: int) -> dt.datetime:
        return self.local_midnight_utc(day) + dt.timedelta(minutes=READY_MINUTE)


def _columns(session: Session, stmt: Executable, dtypes: list[Any]) -> list[npt.NDArray[Any]]:
    # binary COPY on PostgreSQL: a day's order lines arrive without a Python object per value
    return read_columns(session, stmt, dtypes)


def _index(ids: I64, values: I64, what: str) -> I64:
    """Positions of ``values`` in the sorted ``ids``; every value must be there."""
    pos = np.searchsorted(ids, values)
    pos = np.minimum(pos, max(ids.shape[0] - 1, 0))
    if values.size and (ids.size == 0 or not np.array_equal(ids[pos], values)):
        missing = values[(ids.size == 0) | (ids[pos] != values)] if ids.size else values
        raise PlanningError(f"{what} {int(missing[0])} is referenced but not loaded (inactive or missing)")
    return pos.astype(np.int64)


def _minutes_since(times: npt.NDArray[np.datetime64], origin: dt.datetime) -> I64:
    delta = times.astype("datetime64[m]") - np.datetime64(origin, "m")
    return delta.astype(np.int64)


def load_batch(session: Session, batch_id: int, *, previous: bool = False) -> LoadedBatch:
    """Read batch ``batch_id`` (its ``batched`` orders) and the belt's state into an allocation problem.

    ``previous``: the batch is planned again; the decisions of the latest solver run that decided any of its
    lines are its previous plan (per cell, site and day), and every piece planned elsewhere now costs
    :data:`CHURN_FEN_PER_UNIT`."""
    closed_at = session.execute(
        select(func.coalesce(Batch.closed_at, Batch.window_end)).where(Batch.id == batch_id)
    ).scalar_one_or_none()
    if closed_at is None:
        raise PlanningError(f"batch {batch_id} does not exist")
    local_close = closed_at + BELT_UTC_OFFSET
    day0 = local_close.date()
    origin = dt.datetime.combine(day0, dt.time()) - BELT_UTC_OFFSET  # local midnight of day 0, in UTC
    close_minute = int((closed_at - origin).total_seconds() // 60)
    first_day = 0 if close_minute + LEAD_MINUTES <= READY_MINUTE else 1

    # --- the batch's orders and lines ---------------------------------------------------------------------
    in_batch = (Order.batch_id == batch_id) & (Order.status == OrderState.BATCHED)
    order_ids, order_prov_code, order_ship, order_merchant = _columns(
        session,
        select(Order.id, Order.province, Order.ship_by, Order.merchant_id).where(in_batch).order_by(Order.id),
        [np.int64, object, "datetime64[us]", np.int64],
    )
    # every list is read in a fixed order (by ids), never PostgreSQL's physical one, which differs after a
    # reset: the same batch makes the same problem, and so the same plan
    line_id, line_order, line_sku_id, line_qty = _columns(
        session,
        select(OrderLine.id, OrderLine.order_id, OrderLine.sku_id, OrderLine.quantity)
        .join(Order, Order.id == OrderLine.order_id)
        .where(in_batch)
        .order_by(OrderLine.id),
        [np.int64, np.int64, np.int64, np.int64],
    )
    empty_orders = np.setdiff1d(order_ids, line_order)

    # --- master data --------------------------------------------------------------------------------------
    merchant_ids, m_lon, m_lat, m_pools = _columns(
        session,
        select(Merchant.id, Merchant.lon, Merchant.lat, Merchant.pools_stock).order_by(Merchant.id),
        [np.int64, np.float64, np.float64, np.bool_],
    )
    (family_ids,) = _columns(session, select(ProcessFamily.id).order_by(ProcessFamily.id), [np.int64])
    style_ids, st_family, st_mpu, st_min_lot, st_changeover = _columns(
        session,
        select(
            Style.id, Style.process_family_id, Style.minutes_per_unit, Style.min_lot, Style.changeover_fen
        ).order_by(Style.id),
        [np.int64, np.int64, np.float64, np.int64, np.int64],
    )
    sku_ids, sku_style_id, sku_weight = _columns(
        session,
        select(Sku.id, Sku.style_id, Sku.weight_g).order_by(Sku.id),
        [np.int64, np.int64, np.int64],
    )
    workshop_ids, w_lon, w_lat = _columns(
        session,
        select(Workshop.id, Workshop.lon, Workshop.lat).where(Workshop.active).order_by(Workshop.id),
        [np.int64, np.float64, np.float64],
    )
    warehouse_ids, h_lon, h_lat, h_cap, h_fen = _columns(
        session,
        select(
            SharedWarehouse.id,
            SharedWarehouse.lon,
            SharedWarehouse.lat,
            SharedWarehouse.daily_handling_capacity,
            SharedWarehouse.handling_fen_per_line,
        ).order_by(SharedWarehouse.id),
        [np.int64, np.float64, np.float64, np.int64, np.int64],
    )
    sku_style = _index(style_ids, sku_style_id, "style")
    style_family = _index(family_ids, st_family, "process family")
    line_sku = _index(sku_ids, line_sku_id, "SKU")

    # --- provinces and shipping ---------------------------------------------------------------------------
    tables = price_tables(session, order_prov_code.tolist())
    provinces = tables.provinces
    order_province = tables.province_index(order_prov_code.tolist())
    courier_ids = tables.courier_ids
    price_first_w, price_first, price_add = (
        tables.first_weight_g,
        tables.first_fen,
        tables.additional_fen_per_kg,
    )
    # the solver's view: the cheapest first-weight price of any courier; -1 where no courier serves
    unserved = np.iinfo(np.int64).max
    best = np.where(price_first >= 0, price_first, unserved).min(axis=0, initial=unserved)
    province_shipping = np.where(best == unserved, -1, best).astype(np.int64)

    # --- cells --------------------------------------------------------------------------------------------
    line_pos = np.searchsorted(order_ids, line_order)
    line_ship = _minutes_since(order_ship[line_pos], origin)
    line_owner = _index(merchant_ids, order_merchant[line_pos], "merchant")
    line_prov = order_province[line_pos]
    line_due = np.floor_divide(line_ship - READY_MINUTE, MINUTES_PER_DAY)
    n_prov, n_merchants = max(len(provinces), 1), max(merchant_ids.shape[0], 1)
    due_lo = int(line_due.min()) if line_due.size else 0
    due_span = int(line_due.max()) - due_lo + 1 if line_due.size else 1
    key = ((line_sku * n_merchants + line_owner) * n_prov + line_prov) * due_span + (line_due - due_lo)
    cell_key, line_cell = np.unique(key, return_inverse=True)
    line_cell = line_cell.astype(np.int64).reshape(-1)
    n_cells = cell_key.shape[0]
    cell_qty = np.bincount(line_cell, weights=line_qty, minlength=n_cells).astype(np.int64)
    cell_lines = np.bincount(line_cell, minlength=n_cells).astype(np.int64)
    cell_ship = np.full(n_cells, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(cell_ship, line_cell, line_ship)
    rest = cell_key // due_span
    cell_prov = rest % n_prov
    rest //= n_prov
    cell_owner = rest % n_merchants
    cell_sku = rest // n_merchants
    order = np.lexsort((line_id, line_ship, line_cell))
    # orders of more than one piece (CSR by order id, then line id): the split-shipment penalty counts theirs
    rank = np.empty(order.shape[0], np.int64)
    rank[order] = np.arange(order.shape[0])
    pieces_of_order = np.bincount(line_pos, weights=line_qty, minlength=order_ids.shape[0])
    listed = np.flatnonzero(pieces_of_order[line_pos] > 1)
    listed = listed[np.lexsort((line_id[listed], line_pos[listed]))]
    listed_counts = np.unique(line_pos[listed], return_counts=True)[1]

    # --- plan days and capacity ---------------------------------------------------------------------------
    last_due = int(line_due.max()) if line_due.size else 0
    days = max(first_day, last_due + 1) + LATE_DAYS
    day_last = day0 + dt.timedelta(days=days - 1)
    n_w, n_f = workshop_ids.shape[0], family_ids.shape[0]
    regular = np.zeros((n_w, n_f, days))
    overtime = np.zeros((n_w, n_f, days))
    premium = np.zeros((n_w, n_f, days), np.int64)
    cw, cd, cf, creg, cot, cprem = _columns(
        session,
        select(
            WorkshopCapacity.workshop_id,
            WorkshopCapacity.day,
            WorkshopCapacity.process_family_id,
            WorkshopCapacity.regular_minutes,
            WorkshopCapacity.overtime_minutes,
            WorkshopCapacity.overtime_premium_fen_per_minute,
        )
        .join(Workshop, Workshop.id == WorkshopCapacity.workshop_id)
        .where(Workshop.active, WorkshopCapacity.day.between(day0, day_last)),
        [np.int64, "datetime64[D]", np.int64, np.float64, np.float64, np.int64],
    )
    if cw.size:
        at = (_index(workshop_ids, cw, "workshop"), _index(family_ids, cf, "process family"), _days(cd, day0))
        regular[at], overtime[at], premium[at] = creg, cot, cprem
    # the calendar's longest day per workshop and family, before earlier plans take their share
    calendar_day = (regular + overtime).max(axis=2, initial=0.0)
    uw, ud, uf, ureg, uot = _columns(
        session,
        select(
            WorkOrder.workshop_id,
            WorkOrder.day,
            WorkOrder.process_family_id,
            func.sum(WorkOrder.regular_minutes),
            func.sum(WorkOrder.overtime_minutes),
        )
        .join(Workshop, Workshop.id == WorkOrder.workshop_id)
        .where(
            Workshop.active,
            WorkOrder.status != WorkOrderState.CANCELLED,
            WorkOrder.day.between(day0, day_last),
        )
        .group_by(WorkOrder.workshop_id, WorkOrder.day, WorkOrder.process_family_id),
        [np.int64, "datetime64[D]", np.int64, np.float64, np.float64],
    )
    if uw.size:
        at = (_index(workshop_ids, uw, "workshop"), _index(family_ids, uf, "process family"), _days(ud, day0))
        regular[at] -= ureg
        overtime[at] -= uot
        # what earlier plans ran over the regular minutes came out of overtime; never below zero
        overtime[at] += np.minimum(regular[at], 0.0)
        np.maximum(regular, 0.0, out=regular)
        np.maximum(overtime, 0.0, out=overtime)

    handling = np.repeat(h_cap[:, None], days, axis=1).astype(np.int64)
    hw, hd, hn = _columns(
        session,
        select(AllocationDecision.warehouse_id, AllocationDecision.day, func.count())
        .where(
            AllocationDecision.source == SiteKind.WAREHOUSE,
            AllocationDecision.day.between(day0, day_last),
        )
        .group_by(AllocationDecision.warehouse_id, AllocationDecision.day),
        [np.int64, "datetime64[D]", np.int64],
    )
    if hw.size:
        handling[_index(warehouse_ids, hw, "warehouse"), _days(hd, day0)] -= hn
        np.maximum(handling, 0, out=handling)

    qw, qs, qcost = _columns(
        session,
        select(Qualification.workshop_id, Qualification.style_id, Qualification.unit_cost_fen)
        .join(Workshop, Workshop.id == Qualification.workshop_id)
        .where(Workshop.active)
        .order_by(Qualification.workshop_id, Qualification.style_id),
        [np.int64, np.int64, np.int64],
    )
    q_workshop, q_style = _index(workshop_ids, qw, "workshop"), _index(style_ids, qs, "style")
    _check_lots_fit(
        session,
        style_ids,
        np.unique(sku_style[cell_sku]),
        st_min_lot * st_mpu,
        style_family,
        calendar_day,
        q_workshop,
        q_style,
    )
    sw, so, ss, savail = _columns(
        session,
        select(Stock.warehouse_id, Stock.owner_id, Stock.sku_id, Stock.on_hand - Stock.reserved)
        .where(Stock.on_hand > Stock.reserved)
        .order_by(Stock.warehouse_id, Stock.owner_id, Stock.sku_id),
        [np.int64, np.int64, np.int64, np.int64],
    )

    # lots planned earlier and not started yet: they may grow, and their spare pieces serve first
    lot_id, lw, ls, ld, lq, ltaken, lowner = _columns(
        session,
        select(
            WorkOrder.id,
            WorkOrder.workshop_id,
            WorkOrder.style_id,
            WorkOrder.day,
            WorkOrder.quantity,
            func.coalesce(
                select(func.sum(AllocationDecision.quantity))
                .where(AllocationDecision.work_order_id == WorkOrder.id)
                .scalar_subquery(),
                0,
            ),
            Style.merchant_id,
        )
        .join(Workshop, Workshop.id == WorkOrder.workshop_id)
        .join(Style, Style.id == WorkOrder.style_id)
        .where(
            Workshop.active,
            WorkOrder.status == WorkOrderState.PLANNED,
            WorkOrder.day.between(day0 + dt.timedelta(days=first_day), day_last),
        )
        .order_by(WorkOrder.workshop_id, WorkOrder.style_id, WorkOrder.day, WorkOrder.id),
        [np.int64, np.int64, np.int64, "datetime64[D]", np.int64, np.int64, np.int64],
    )
    # one lot per workshop × style × day: should several work orders share one, the first grows
    lot_w, lot_s, lot_d = (
        _index(workshop_ids, lw, "workshop"),
        _index(style_ids, ls, "style"),
        _days(ld, day0),
    )
    first = np.ones(lot_id.shape[0], np.bool_)
    if lot_id.size:
        first[1:] = (np.diff(lot_w) != 0) | (np.diff(lot_s) != 0) | (np.diff(lot_d) != 0)
    group = np.cumsum(first) - 1
    spare = np.bincount(group, weights=np.maximum(lq - ltaken, 0), minlength=int(first.sum())).astype(
        np.int64
    )

    prev = (
        _previous_plan(session, in_batch, line_id, line_cell, warehouse_ids, workshop_ids, day0, days)
        if previous
        else None
    )

    problem = AllocationProblem(
        merchant_lon=m_lon,
        merchant_lat=m_lat,
        merchant_pools=m_pools,
        style_family=style_family,
        style_minutes_per_unit=st_mpu,
        style_min_lot=st_min_lot,
        style_changeover_fen=st_changeover,
        sku_style=sku_style,
        sku_weight_g=sku_weight,
        cell_style=sku_style[cell_sku],
        cell_sku=cell_sku,
        cell_owner=cell_owner,
        cell_quantity=cell_qty,
        cell_lines=cell_lines,
        cell_ship_by=cell_ship,
        cell_province=cell_prov,
        workshop_lon=w_lon,
        workshop_lat=w_lat,
        regular_minutes=regular,
        overtime_minutes=overtime,
        overtime_fen_per_minute=premium,
        qual_workshop=q_workshop,
        qual_style=q_style,
        qual_unit_cost_fen=qcost,
        warehouse_lon=h_lon,
        warehouse_lat=h_lat,
        warehouse_handling=handling,
        warehouse_handling_fen=h_fen,
        stock_warehouse=_index(warehouse_ids, sw, "warehouse"),
        stock_owner=_index(merchant_ids, so, "merchant"),
        stock_sku=_index(sku_ids, ss, "SKU"),
        stock_available=savail,
        province_shipping_fen=province_shipping,
        start=day0,
        days=days,
        first_day=first_day,
        ready_minute=READY_MINUTE,
        late_fen_per_unit_day=LATE_FEN_PER_UNIT_DAY,
        max_late_days=LATE_DAYS,  # the horizon above ends where the last due day's window does
        open_lot_workshop=lot_w[first],
        open_lot_style=lot_s[first],
        open_lot_day=lot_d[first],
        open_lot_spare=spare,
        open_lot_owner=_index(merchant_ids, lowner[first], "merchant"),
        order_start=np.concatenate(([0], np.cumsum(listed_counts))).astype(np.int64),
        order_line_cell=line_cell[listed],
        order_line_quantity=line_qty[listed].astype(np.int64),
        split_fen_per_parcel=SPLIT_FEN_PER_PARCEL,
        **(prev or {}),
    )
    return LoadedBatch(
        batch_id=batch_id,
        day0=day0,
        problem=problem,
        merchant_ids=merchant_ids,
        style_ids=style_ids,
        sku_ids=sku_ids,
        family_ids=family_ids,
        workshop_ids=workshop_ids,
        warehouse_ids=warehouse_ids,
        provinces=provinces,
        line_id=line_id[order],
        line_order=line_order[order],
        line_sku=line_sku[order],
        line_quantity=line_qty[order],
        line_cell=line_cell[order],
        open_lot_work_order=lot_id[first],
        order_ids=order_ids,
        order_province=order_province,
        order_ship_by=order_ship,
        empty_orders=empty_orders,
        courier_ids=courier_ids,
        price_first_weight_g=price_first_w,
        price_first_fen=price_first,
        price_additional_fen_per_kg=price_add,
        listed_line=rank[listed],
    )


def _previous_plan(
    session: Session,
    in_batch: ColumnElement[bool],
    line_id: I64,
    line_cell: I64,
    warehouse_ids: I64,
    workshop_ids: I64,
    day0: dt.date,
    days: int,
) -> dict[str, Any]:
    """The problem's previous-plan arrays: the decisions of the latest solver run that decided any of these
    lines, per cell, site kind, site and day (a day before plan day 0 counts as day 0, one past the horizon as
    its last; a site no longer loaded, an inactive workshop, is dropped: its pieces move whatever happens)."""
    by_id = np.argsort(line_id)
    lines = select(OrderLine.id).join(Order, Order.id == OrderLine.order_id).where(in_batch)
    latest = (
        select(func.max(AllocationDecision.solver_run_id))
        .where(AllocationDecision.order_line_id.in_(lines))
        .scalar_subquery()
    )
    d_line, d_wh, d_ws, d_day, d_qty = _columns(
        session,
        select(
            AllocationDecision.order_line_id,
            func.coalesce(AllocationDecision.warehouse_id, -1),
            func.coalesce(AllocationDecision.workshop_id, -1),
            AllocationDecision.day,
            AllocationDecision.quantity,
        ).where(AllocationDecision.solver_run_id == latest, AllocationDecision.order_line_id.in_(lines)),
        [np.int64, np.int64, np.int64, "datetime64[D]", np.int64],
    )
    pos = positions(line_id[by_id], d_line)
    made = d_ws >= 0
    site = np.where(made, positions(workshop_ids, d_ws), positions(warehouse_ids, d_wh))
    keep = (pos >= 0) & (site >= 0) & (d_qty > 0)
    day = np.clip(_days(d_day[keep], day0), 0, days - 1) if keep.any() else np.empty(0, np.int64)
    return {
        "prev_cell": line_cell[by_id[pos[keep]]].astype(np.int64),
        "prev_kind": made[keep].astype(np.int64),
        "prev_site": site[keep],
        "prev_day": day.astype(np.int64),
        "prev_quantity": d_qty[keep].astype(np.int64),
        "churn_fen_per_unit": CHURN_FEN_PER_UNIT,
    }


def _check_lots_fit(
    session: Session,
    style_ids: I64,
    ordered: I64,
    lot_minutes: npt.NDArray[np.float64],
    style_family: I64,
    calendar_day: npt.NDArray[np.float64],
    q_workshop: I64,
    q_style: I64,
) -> None:
    """Refuse a batch that orders a style whose minimum lot no qualified workshop could make in one day.

    That is a master-data error (a mistyped minimum lot or minutes per piece), not a busy belt: the check uses
    the calendar's capacity, before earlier plans take their share, and only workshops whose calendar has the
    style's family at all. The style is named so an operator can correct it.
    """
    fits = np.zeros(style_ids.shape[0], np.bool_)
    calendared = np.zeros(style_ids.shape[0], np.bool_)
    day = calendar_day[q_workshop, style_family[q_style]]
    np.logical_or.at(calendared, q_style, day > 0)
    np.logical_or.at(fits, q_style, day >= lot_minutes[q_style])
    bad = ordered[calendared[ordered] & ~fits[ordered]]
    if bad.size == 0:
        return
    s = int(bad[0])
    code = session.execute(select(Style.code).where(Style.id == int(style_ids[s]))).scalar_one()
    longest = float(day[q_style == s].max())
    more = f" (and {bad.size - 1} more styles)" if bad.size > 1 else ""
    raise PlanningError(
        f"style {int(style_ids[s])} ({code}): its minimum lot needs {lot_minutes[s]:g} minutes in one day, "
        f"and the longest day of any qualified workshop has {longest:g}{more}"
    )


def _days(dates: npt.NDArray[Any], day0: dt.date) -> I64:
    return (dates.astype("datetime64[D]") - np.datetime64(day0, "D")).astype(np.int64)
