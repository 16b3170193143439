"""The allocation problem: what one batch asks of the belt, as columnar arrays.

Everything is indexed densely from 0 (the caller keeps the maps back to its own ids). The same problem is
meant for the greedy baseline here and for a later exact optimiser, so it carries the whole cost picture:
unit costs, overtime premiums, changeover, minimum lots, warehouse handling, shipping and lateness.

Time: plan day ``d`` is ``start + d`` days. Goods made (or picked) on day ``d`` are ready for that
evening's pickup at ``ready_minute`` past midnight; a cell's ship-by is in minutes since ``start``
midnight, so the last day that still meets it is ``floor((ship_by - ready_minute) / 1440)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

MINUTES_PER_DAY = 1440

# what each axis of a multi-dimensional array indexes, for errors that name the record at fault
_CAPACITY_AXES = ("workshop", "family", "day")
_AXES: dict[str, tuple[str, ...]] = {
    "regular_minutes": _CAPACITY_AXES,
    "overtime_minutes": _CAPACITY_AXES,
    "overtime_fen_per_minute": _CAPACITY_AXES,
    "warehouse_handling": ("warehouse", "day"),
    "qual_unit_cost_fen": ("qualification",),
    "stock_available": ("stock row",),
    "open_lot_spare": ("open lot",),
}


class ProblemError(ValueError):
    """The problem's arrays are inconsistent; the message names the array at fault."""


@dataclass(frozen=True, eq=False)
class AllocationProblem:
    # --- merchants (owners of stock; each demand cell belongs to one) -------------------------------------
    merchant_lon: F64
    merchant_lat: F64
    merchant_pools: B  # may this merchant's orders take other pooling merchants' stock (and vice versa)?

    # --- styles and SKUs ----------------------------------------------------------------------------------
    style_family: I64  # process family index, into the capacity arrays' second axis
    style_minutes_per_unit: F64
    style_min_lot: I64  # a lot of a style at a workshop on a day is 0 or at least this many pieces
    style_changeover_fen: I64  # charged once per lot
    sku_style: I64
    sku_weight_g: I64

    # --- demand cells: order lines aggregated by SKU, owner, destination province and ship-by day ---------
    cell_style: I64
    cell_sku: I64
    cell_owner: I64  # the ordering merchant
    cell_quantity: I64
    cell_lines: I64  # how many order lines the cell holds (warehouse handling and parcels count lines)
    cell_ship_by: I64  # the earliest ship-by among the cell's lines, minutes since ``start`` midnight
    cell_province: I64  # index into ``province_shipping_fen``

    # --- sites: workshops ---------------------------------------------------------------------------------
    workshop_lon: F64
    workshop_lat: F64
    # capacity[workshop, family, day]: minutes still free for this batch
    regular_minutes: F64
    overtime_minutes: F64
    overtime_fen_per_minute: I64
    # qualifications (sparse): workshop may make style at unit cost
    qual_workshop: I64
    qual_style: I64
    qual_unit_cost_fen: I64

    # --- sites: shared warehouses -------------------------------------------------------------------------
    warehouse_lon: F64
    warehouse_lat: F64
    warehouse_handling: I64  # [warehouse, day]: order lines it can still pick and pack
    warehouse_handling_fen: I64  # per order line
    # stock (sparse): owner's available pieces of a SKU in a warehouse (on hand less reserved)
    stock_warehouse: I64
    stock_owner: I64
    stock_sku: I64
    stock_available: I64

    # --- shipping and time --------------------------------------------------------------------------------
    province_shipping_fen: I64  # cheapest price of a parcel to each province; < 0: no courier serves it
    start: dt.date
    days: int
    first_day: int = 0  # the first plan day that may be used
    ready_minute: int = 18 * 60
    late_fen_per_unit_day: int = 500
    # the service window of a cell: stock is picked at most ``pick_early_days`` before its due day (pickers
    # work for the next pickups, not for next week's), and nothing is served more than ``max_late_days`` after
    # it: later than that it is unfilled, for an operator to decide (platforms cancel such orders)
    pick_early_days: int = 1
    max_late_days: int = 3
    # a piece that fits nowhere: above any way of serving it (a whole minimum lot included), so what can be
    # made is made
    unfilled_fen_per_unit: int = 1_000_000

    # --- lots planned earlier (by other batches) that may still grow: workshop × style × day ---------------
    # Their spare pieces (made but not yet taken) serve cells first; growing one needs no new minimum lot
    # and no changeover. Their minutes are already out of the capacity above.
    open_lot_workshop: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    open_lot_style: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    open_lot_day: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    open_lot_spare: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    open_lot_owner: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # whose stock the spare is

    # --- orders of more than one piece, for the split-shipment penalty (CSR) -------------------------------
    # Order ``o``'s lines are ``order_line_*[order_start[o]:order_start[o + 1]]``, each in one cell. An order
    # ships one parcel per site its pieces come from; each parcel past the first costs
    # ``split_fen_per_parcel``. Orders of a single piece cannot split and need not be listed: a cell's
    # pieces not on a listed line are its unlisted lines' (one parcel each). No order listed: no penalty.
    order_start: I64 = field(default_factory=lambda: np.zeros(1, np.int64))
    order_line_cell: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    order_line_quantity: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    split_fen_per_parcel: int = 0

    # --- the previous plan of these cells, when the batch is planned again: churn -------------------------
    # Per entry: a cell's pieces at a site (``prev_kind``: 0 warehouse, 1 workshop, as ``SiteKind``) on a day.
    # Every piece of the previous plan not at the same site (kind and index) in the new plan costs
    # ``churn_fen_per_unit``; the day may change freely. No entries: no churn.
    prev_cell: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    prev_kind: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    prev_site: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    prev_day: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    prev_quantity: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    churn_fen_per_unit: int = 0

    def __post_init__(self) -> None:
        self.validate()

    # --- sizes --------------------------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return int(self.cell_sku.shape[0])

    @property
    def n_workshops(self) -> int:
        return int(self.workshop_lon.shape[0])

    @property
    def n_warehouses(self) -> int:
        return int(self.warehouse_lon.shape[0])

    @property
    def n_families(self) -> int:
        return int(self.regular_minutes.shape[1])

    @property
    def n_merchants(self) -> int:
        return int(self.merchant_lon.shape[0])

    @property
    def n_styles(self) -> int:
        return int(self.style_family.shape[0])

    @property
    def n_skus(self) -> int:
        return int(self.sku_style.shape[0])

    @property
    def n_orders(self) -> int:
        """Orders listed for the split-shipment penalty (those of more than one piece)."""
        return int(self.order_start.shape[0]) - 1

    @property
    def n_order_lines(self) -> int:
        return int(self.order_line_cell.shape[0])

    def order_line_order(self) -> I64:
        """The listed order of each listed order line."""
        counts = np.diff(self.order_start)
        out: I64 = np.repeat(np.arange(self.n_orders, dtype=np.int64), counts)
        return out

    def first_pick_day(self, due: I64) -> I64:
        """The first plan day stock may be picked for cells due on ``due`` (the service window's start)."""
        return np.clip(due - self.pick_early_days, self.first_day, self.days - 1)

    def last_day(self, due: I64) -> I64:
        """The last plan day cells due on ``due`` may still be served, late (the service window's end)."""
        last: I64 = np.minimum(np.maximum(due, self.first_day) + self.max_late_days, self.days - 1)
        return last

    def may_take(self, owner: I64, other: I64) -> B:
        """May merchant ``owner``'s orders take ``other``'s goods: the same merchant, or both pool."""
        same_or_pooled: B = (owner == other) | (self.merchant_pools[owner] & self.merchant_pools[other])
        return same_or_pooled

    def due_day(self) -> I64:
        """Per cell, the last plan day whose production (or picking) still meets its ship-by."""
        return np.floor_divide(self.cell_ship_by - self.ready_minute, MINUTES_PER_DAY).astype(np.int64)

    # --- validation ---------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ProblemError` naming the first inconsistent array."""
        for f in fields(self):
            if f.type in ("I64", "F64", "B") and not isinstance(getattr(self, f.name), np.ndarray):
                raise ProblemError(
                    f"{f.name}: expected a numpy array, got {type(getattr(self, f.name)).__name__}"
                )
        self._same_length("merchant", ["merchant_lon", "merchant_lat", "merchant_pools"])
        self._same_length(
            "style", ["style_family", "style_minutes_per_unit", "style_min_lot", "style_changeover_fen"]
        )
        self._same_length("sku", ["sku_style", "sku_weight_g"])
        self._same_length(
            "cell",
            [
                "cell_style",
                "cell_sku",
                "cell_owner",
                "cell_quantity",
                "cell_lines",
                "cell_ship_by",
                "cell_province",
            ],
        )
        self._same_length("workshop", ["workshop_lon", "workshop_lat"])
        self._same_length("qualification", ["qual_workshop", "qual_style", "qual_unit_cost_fen"])
        self._same_length("warehouse", ["warehouse_lon", "warehouse_lat", "warehouse_handling_fen"])
        self._same_length("stock", ["stock_warehouse", "stock_owner", "stock_sku", "stock_available"])
        self._same_length(
            "open lot",
            ["open_lot_workshop", "open_lot_style", "open_lot_day", "open_lot_spare", "open_lot_owner"],
        )
        if self.days < 1:
            raise ProblemError(f"days: must be at least 1, got {self.days}")
        if not 0 <= self.first_day < self.days:
            raise ProblemError(f"first_day: {self.first_day} is outside the {self.days} plan days")
        if not 0 <= self.ready_minute < MINUTES_PER_DAY:
            raise ProblemError(f"ready_minute: {self.ready_minute} is not a minute of a day")
        cap_shape = (
            self.n_workshops,
            self.regular_minutes.shape[1] if self.regular_minutes.ndim == 3 else -1,
        )
        for name in ("regular_minutes", "overtime_minutes", "overtime_fen_per_minute"):
            a = getattr(self, name)
            if (
                a.ndim != 3
                or a.shape[0] != cap_shape[0]
                or a.shape[1] != cap_shape[1]
                or a.shape[2] != self.days
            ):
                raise ProblemError(
                    f"{name}: shape {a.shape}, "
                    f"expected (workshops={self.n_workshops}, families, days={self.days})"
                )
        if self.warehouse_handling.shape != (self.n_warehouses, self.days):
            raise ProblemError(
                f"warehouse_handling: shape {self.warehouse_handling.shape}, "
                f"expected (warehouses={self.n_warehouses}, days={self.days})"
            )
        self._index("style_family", self.style_family, self.n_families)
        self._index("sku_style", self.sku_style, self.n_styles)
        self._index("cell_sku", self.cell_sku, self.n_skus)
        self._index("cell_style", self.cell_style, self.n_styles)
        self._index("cell_owner", self.cell_owner, self.n_merchants)
        self._index("cell_province", self.cell_province, int(self.province_shipping_fen.shape[0]))
        self._index("qual_workshop", self.qual_workshop, self.n_workshops)
        self._index("qual_style", self.qual_style, self.n_styles)
        self._index("open_lot_workshop", self.open_lot_workshop, self.n_workshops)
        self._index("open_lot_style", self.open_lot_style, self.n_styles)
        self._index("open_lot_day", self.open_lot_day, self.days)
        self._index("open_lot_owner", self.open_lot_owner, self.n_merchants)
        self._index("stock_warehouse", self.stock_warehouse, self.n_warehouses)
        self._index("stock_owner", self.stock_owner, self.n_merchants)
        self._index("stock_sku", self.stock_sku, self.n_skus)
        if self.n_cells and not np.array_equal(self.cell_style, self.sku_style[self.cell_sku]):
            bad = int(np.flatnonzero(self.cell_style != self.sku_style[self.cell_sku])[0])
            raise ProblemError(
                f"cell_style: cell {bad} names style {self.cell_style[bad]}, its SKU's is another"
            )
        for name in ("cell_quantity", "cell_lines"):
            a = getattr(self, name)
            if a.size and a.min() < 1:
                raise ProblemError(
                    f"{name}: every cell needs at least 1, cell {int(a.argmin())} has {a.min()}"
                )
        if self.n_cells and np.any(self.cell_lines > self.cell_quantity):
            raise ProblemError("cell_lines: a cell has more lines than pieces")
        nonneg = [
            "style_min_lot",
            "style_changeover_fen",
            "sku_weight_g",
            "regular_minutes",
            "overtime_minutes",
            "overtime_fen_per_minute",
            "qual_unit_cost_fen",
            "warehouse_handling",
            "warehouse_handling_fen",
            "stock_available",
            "open_lot_spare",
        ]
        for name in nonneg:
            a = getattr(self, name)
            if a.size and a.min() < 0:
                at = np.unravel_index(int(a.argmin()), a.shape)
                axes = _AXES.get(name, (name.split("_")[0],))
                where = ", ".join(f"{axis} {int(i)}" for axis, i in zip(axes, at, strict=True))
                raise ProblemError(f"{name}: negative value {a.min()} at {where}")
        if self.style_minutes_per_unit.size and not np.all(self.style_minutes_per_unit > 0):
            raise ProblemError("style_minutes_per_unit: every style needs positive minutes per unit")
        if self.pick_early_days < 0 or self.max_late_days < 0:
            raise ProblemError(
                f"pick_early_days/max_late_days: must be at least 0, got {self.pick_early_days}/"
                f"{self.max_late_days}"
            )
        if self.late_fen_per_unit_day < 0:
            raise ProblemError("late_fen_per_unit_day: negative")
        if self.unfilled_fen_per_unit < 0:
            raise ProblemError("unfilled_fen_per_unit: negative")
        self._validate_orders()
        self._validate_previous()
        pairs = self.qual_workshop * max(self.n_styles, 1) + self.qual_style
        if np.unique(pairs).shape[0] != pairs.shape[0]:
            raise ProblemError("qual_workshop/qual_style: a workshop is qualified twice for one style")
        lots = (
            self.open_lot_workshop * max(self.n_styles, 1) + self.open_lot_style
        ) * self.days + self.open_lot_day
        if np.unique(lots).shape[0] != lots.shape[0]:
            raise ProblemError("open_lot_workshop/open_lot_style/open_lot_day: a lot is given twice")
        key = (self.stock_warehouse * max(self.n_merchants, 1) + self.stock_owner) * max(self.n_skus, 1)
        key = key + self.stock_sku
        if np.unique(key).shape[0] != key.shape[0]:
            raise ProblemError("stock_warehouse/stock_owner/stock_sku: a stock row is given twice")

    def _validate_orders(self) -> None:
        start = self.order_start
        if start.ndim != 1 or start.shape[0] < 1 or start[0] != 0:
            raise ProblemError("order_start: expected one offset per listed order and one more, from 0")
        steps = np.diff(start)
        if steps.size and steps.min() < 1:
            bad = int(np.argmin(steps))
            raise ProblemError(f"order_start: order {bad} has no lines")
        self._same_length("listed order line", ["order_line_cell", "order_line_quantity"])
        if int(start[-1]) != self.n_order_lines:
            raise ProblemError(
                f"order_start: ends at {int(start[-1])}, there are {self.n_order_lines} listed order lines"
            )
        self._index("order_line_cell", self.order_line_cell, self.n_cells)
        q = self.order_line_quantity
        if q.size and q.min() < 1:
            raise ProblemError(f"order_line_quantity: order line {int(q.argmin())} has {int(q.min())} pieces")
        if self.split_fen_per_parcel < 0:
            raise ProblemError("split_fen_per_parcel: negative")
        if not q.size:
            return
        listed_q = np.bincount(self.order_line_cell, weights=q, minlength=self.n_cells).astype(np.int64)
        listed_n = np.bincount(self.order_line_cell, minlength=self.n_cells).astype(np.int64)
        # the unlisted lines of a cell hold at least a piece each
        rest_q, rest_n = self.cell_quantity - listed_q, self.cell_lines - listed_n
        bad_cells = np.flatnonzero((rest_n < 0) | (rest_q < rest_n))
        if bad_cells.size:
            c = int(bad_cells[0])
            raise ProblemError(
                f"order_line_quantity: cell {c}'s listed order lines hold {int(listed_q[c])} pieces in "
                f"{int(listed_n[c])} lines, the cell {int(self.cell_quantity[c])} in "
                f"{int(self.cell_lines[c])}"
            )

    def _validate_previous(self) -> None:
        self._same_length(
            "previous plan entry", ["prev_cell", "prev_kind", "prev_site", "prev_day", "prev_quantity"]
        )
        if self.churn_fen_per_unit < 0:
            raise ProblemError("churn_fen_per_unit: negative")
        if not self.prev_cell.size:
            return
        self._index("prev_cell", self.prev_cell, self.n_cells)
        self._index("prev_kind", self.prev_kind, 2)
        self._index("prev_day", self.prev_day, self.days)
        for kind, n, what in ((0, self.n_warehouses, "warehouse"), (1, self.n_workshops, "workshop")):
            sites = self.prev_site[self.prev_kind == kind]
            if sites.size and (sites.min() < 0 or sites.max() >= n):
                entry = int(
                    np.flatnonzero((self.prev_kind == kind) & ((self.prev_site < 0) | (self.prev_site >= n)))[
                        0
                    ]
                )
                raise ProblemError(
                    f"prev_site: entry {entry} names {what} {int(self.prev_site[entry])}, outside 0..{n - 1}"
                )
        q = self.prev_quantity
        if q.min() < 1:
            raise ProblemError(f"prev_quantity: entry {int(q.argmin())} has {int(q.min())} pieces")
        held = np.bincount(self.prev_cell, weights=q, minlength=self.n_cells).astype(np.int64)
        over = np.flatnonzero(held > self.cell_quantity)
        if over.size:
            c = int(over[0])
            raise ProblemError(
                f"prev_quantity: the previous plan gives cell {c} {int(held[c])} pieces, it holds "
                f"{int(self.cell_quantity[c])}"
            )

    def _same_length(self, what: str, names: list[str]) -> None:
        n = getattr(self, names[0]).shape[0]
        for name in names:
            a = getattr(self, name)
            if a.ndim != 1 or a.shape[0] != n:
                raise ProblemError(f"{name}: expected one value per {what} ({n}), got shape {a.shape}")

    @staticmethod
    def _index(name: str, a: I64, n: int) -> None:
        if a.size and (a.min() < 0 or a.max() >= n):
            bad = a[(a < 0) | (a >= n)][0]
            raise ProblemError(f"{name}: index {bad} is outside 0..{n - 1}")

    def summary(self) -> dict[str, Any]:
        return {
            "cells": self.n_cells,
            "pieces": int(self.cell_quantity.sum()),
            "lines": int(self.cell_lines.sum()),
            "workshops": self.n_workshops,
            "warehouses": self.n_warehouses,
            "days": self.days,
            "orders_listed": self.n_orders,
            "previous_plan_pieces": int(self.prev_quantity.sum()),
        }


def as_i64(values: Any) -> I64:
    return np.ascontiguousarray(values, dtype=np.int64)


def as_f64(values: Any) -> F64:
    return np.ascontiguousarray(values, dtype=np.float64)


def as_bool(values: Any) -> B:
    return np.ascontiguousarray(values, dtype=np.bool_)
