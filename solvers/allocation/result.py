"""What an allocation solver returns: columnar pieces of cells, lots, unfilled demand and the cost picture.

An *allocation* is a piece of one demand cell served from one site on one day. A *lot* is what one workshop
makes of one style on one day (it becomes a work order); its quantity may exceed what the cells took from it
when the style's minimum lot rounded it up, and that surplus goes to the owner's stock. A lot planned earlier
(one of the problem's open lots) comes first in the lot arrays; for it, quantity and minutes count only what
this solve added and what it had spare.

Cost parts are integer fen and add up exactly: the objective is the sum of every allocation's goods (unit
cost of what it made, or warehouse handling), overtime, changeover, shipping and lateness parts, the penalty
of the unfilled pieces, the split-shipment penalty (each parcel of a listed order past its first, counted on
the result's own cut of the cells into order lines, ``piece_*``) and churn (each piece of the previous plan
no longer at its site). Both are counted by :func:`solvers.allocation.orders.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem, B


class SiteKind(IntEnum):
    WAREHOUSE = 0
    WORKSHOP = 1


class Why(IntEnum):
    """Why an allocation was taken: the rule of the cascade that placed it."""

    OWN_STOCK = 0
    POOLED_STOCK = 1
    LOT_SURPLUS = 2
    MADE_REGULAR = 3
    MADE_OVERTIME = 4


WHY_TEXT = {
    Why.OWN_STOCK: "the owner's stock at the nearest shared warehouse holding it",
    Why.POOLED_STOCK: "pooled stock of another merchant (both pool) at the nearest shared warehouse",
    Why.LOT_SURPLUS: "the surplus of a minimum lot already planned at the workshop",
    Why.MADE_REGULAR: "made in regular time at the nearest qualified workshop with free capacity",
    Why.MADE_OVERTIME: "made in overtime: no qualified workshop had regular time left",
}


class Unfilled(IntEnum):
    NO_COURIER = 0
    NO_SOURCE = 1
    NO_CAPACITY = 2


UNFILLED_TEXT = {
    Unfilled.NO_COURIER: "no courier price to the destination province",
    Unfilled.NO_SOURCE: "no stock the owner may take and no workshop qualified for the style",
    Unfilled.NO_CAPACITY: (
        "no stock left and no qualified workshop has capacity (for a minimum lot) in the plan days"
    ),
}


class Allocation(NamedTuple):
    site_kind: SiteKind
    site: int
    stock_owner: int  # -1 for a workshop
    day: int
    quantity: int
    regular_minutes: float
    overtime_minutes: float
    goods_fen: int
    overtime_fen: int
    changeover_fen: int
    shipping_fen: int
    late_fen: int
    late: bool
    why: Why
    lot: int  # -1 for stock


@dataclass(frozen=True, eq=False)
class AllocationResult:
    solver: str
    status: str  # "feasible": every cell placed or listed as unfilled with its reason
    seconds: float

    # allocations, grouped by cell in the order the solver placed them
    alloc_cell: I64
    alloc_kind: I64  # SiteKind
    alloc_site: I64  # warehouse or workshop index
    alloc_owner: I64  # stock owner, -1 for a workshop
    alloc_day: I64
    alloc_quantity: I64
    alloc_regular_minutes: F64
    alloc_overtime_minutes: F64
    alloc_goods_fen: I64
    alloc_overtime_fen: I64
    alloc_changeover_fen: I64
    alloc_shipping_fen: I64
    alloc_late_fen: I64
    alloc_late: B
    alloc_why: I64
    alloc_lot: I64

    # lots: one per workshop × style × day
    lot_workshop: I64
    lot_style: I64
    lot_family: I64
    lot_day: I64
    lot_quantity: I64  # made, including the minimum-lot surplus
    lot_allocated: I64  # taken by cells
    lot_surplus_sku: I64  # the SKU of the cell that opened the lot: the surplus is made in it
    lot_owner: I64  # the merchant whose stock receives the surplus
    lot_regular_minutes: F64  # added by this solve
    lot_overtime_minutes: F64
    lot_open: I64  # index into the problem's open lots when the lot was planned earlier, else -1

    # demand that fits nowhere
    unfilled_cell: I64
    unfilled_quantity: I64
    unfilled_reason: I64  # Unfilled

    # capacity this solve used
    used_regular: F64  # [workshop, family, day]
    used_overtime: F64
    used_handling: I64  # [warehouse, day], order lines

    # the penalty of the unfilled pieces (the problem's unfilled_fen_per_unit each)
    unfilled_fen: int = 0
    # the split-shipment penalty and churn (see the module docstring)
    split_fen: int = 0
    churn_fen: int = 0
    # the listed order lines' pieces: per piece its listed order line (index into the problem's order_line_*),
    # its source (an allocation's index, or -1 - the index of an unfilled entry) and its quantity
    piece_line: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    piece_source: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    piece_quantity: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    # a proven lower bound on the objective (None: the solver proves none, like the rule cascade)
    bound_fen: float | None = None
    stopped_by: str = ""  # what ended the search: "optimal", "time", "work"
    seed: int = 0

    @property
    def n_allocations(self) -> int:
        return int(self.alloc_cell.shape[0])

    def costs(self) -> dict[str, int]:
        return {
            "goods_fen": int(self.alloc_goods_fen.sum()),
            "overtime_fen": int(self.alloc_overtime_fen.sum()),
            "changeover_fen": int(self.alloc_changeover_fen.sum()),
            "shipping_fen": int(self.alloc_shipping_fen.sum()),
            "late_fen": int(self.alloc_late_fen.sum()),
            "unfilled_fen": int(self.unfilled_fen),
            "split_fen": int(self.split_fen),
            "churn_fen": int(self.churn_fen),
        }

    @property
    def objective_fen(self) -> int:
        return sum(self.costs().values())

    @property
    def gap(self) -> float | None:
        """(objective − bound) / objective: how far the plan can at most be from the best possible."""
        if self.bound_fen is None:
            return None
        objective = self.objective_fen
        return max(0.0, (objective - self.bound_fen) / objective) if objective > 0 else 0.0

    def cell_allocations(self, cell: int) -> list[Allocation]:
        """The pieces of one cell, in the order they were placed."""
        idx = np.flatnonzero(self.alloc_cell == cell)
        return [
            Allocation(
                SiteKind(int(self.alloc_kind[i])),
                int(self.alloc_site[i]),
                int(self.alloc_owner[i]),
                int(self.alloc_day[i]),
                int(self.alloc_quantity[i]),
                float(self.alloc_regular_minutes[i]),
                float(self.alloc_overtime_minutes[i]),
                int(self.alloc_goods_fen[i]),
                int(self.alloc_overtime_fen[i]),
                int(self.alloc_changeover_fen[i]),
                int(self.alloc_shipping_fen[i]),
                int(self.alloc_late_fen[i]),
                bool(self.alloc_late[i]),
                Why(int(self.alloc_why[i])),
                int(self.alloc_lot[i]),
            )
            for i in idx
        ]

    def unfilled(self) -> dict[int, tuple[int, str]]:
        """Cell → (quantity that fits nowhere, reason)."""
        return {
            int(c): (int(q), UNFILLED_TEXT[Unfilled(int(r))])
            for c, q, r in zip(self.unfilled_cell, self.unfilled_quantity, self.unfilled_reason, strict=True)
        }

    def utilisation(self, problem: AllocationProblem) -> float:
        """Minutes used / regular minutes, over the workshop-days this solve used at all."""
        used = (self.used_regular + self.used_overtime).sum(axis=1)  # [workshop, day]
        regular = problem.regular_minutes.sum(axis=1)
        mask = used > 0
        denominator = float(regular[mask].sum())
        return float(used[mask].sum()) / denominator if denominator > 0 else 0.0

    def summary(self, problem: AllocationProblem) -> dict[str, Any]:
        placed = int(self.alloc_quantity.sum())
        stock = int(self.alloc_quantity[self.alloc_kind == SiteKind.WAREHOUSE].sum())
        return {
            "solver": self.solver,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "objective_fen": self.objective_fen,
            "bound_fen": None if self.bound_fen is None else round(self.bound_fen),
            "gap": None if self.gap is None else round(self.gap, 6),
            "stopped_by": self.stopped_by,
            **self.costs(),
            "pieces_placed": placed,
            "pieces_from_stock": stock,
            "pieces_late": int(self.alloc_quantity[self.alloc_late].sum()),
            "pieces_unfilled": int(self.unfilled_quantity.sum()),
            "lots": int(self.lot_workshop.shape[0]),
            "lot_surplus": int((self.lot_quantity - self.lot_allocated).sum()),
            "lots_grown": int(
                ((self.lot_open >= 0) & (self.lot_regular_minutes + self.lot_overtime_minutes > 0)).sum()
            ),
            "utilisation": round(self.utilisation(problem), 4),
        }
