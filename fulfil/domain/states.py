"""The state machines of orders, work orders, batches and parcels — the one place transitions are decided.

Every change of a ``status`` column goes through :meth:`StateMachine.fire` (one object) or
:meth:`StateMachine.fire_where` (a set of rows in bulk, for the columnar paths); an illegal transition raises
:class:`IllegalTransition` naming the entity, its id, its state and the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


class OrderState(StrEnum):
    CREATED = "created"  # known to the platform, not paid yet
    PAID = "paid"  # waits for a batch
    BATCHED = "batched"  # in a batch that is open or being planned
    ALLOCATED = "allocated"  # the plan says where each line comes from
    IN_PRODUCTION = "in_production"  # a workshop has started on it: frozen for re-planning
    PACKED = "packed"  # every line is in its parcel, waiting for pickup
    SHIPPED = "shipped"  # picked up by the courier
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class OrderEvent(StrEnum):
    PAY = "pay"
    BATCH = "batch"
    RELEASE = "release"  # back to the pool for re-planning
    ALLOCATE = "allocate"
    START_PRODUCTION = "start_production"
    PACK = "pack"
    PICK_UP = "pick_up"
    DELIVER = "deliver"
    CANCEL = "cancel"


class WorkOrderState(StrEnum):
    PLANNED = "planned"
    STARTED = "started"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class WorkOrderEvent(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    REPORT = "report"  # quantities and defects; only while the work is running
    COMPLETE = "complete"
    CANCEL = "cancel"


class BatchState(StrEnum):
    OPEN = "open"  # collecting orders
    CLOSED = "closed"  # closed by window, size or operator; waits for the solver
    PLANNED = "planned"  # decisions written as work orders, reservations and parcels
    FAILED = "failed"  # the solve failed; its orders went back to the pool


class BatchEvent(StrEnum):
    CLOSE = "close"
    PLAN = "plan"
    FAIL = "fail"


class ParcelState(StrEnum):
    PLANNED = "planned"  # goods not ready yet
    PACKED = "packed"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class ParcelEvent(StrEnum):
    PACK = "pack"
    PICK_UP = "pick_up"
    TRANSIT = "transit"
    DELIVER = "deliver"
    CANCEL = "cancel"


class IllegalTransition(RuntimeError):
    def __init__(self, entity: str, ident: object, state: str, event: str) -> None:
        super().__init__(f"{entity} {ident}: cannot {event} in state {state}")
        self.entity, self.ident, self.state, self.event = entity, ident, state, event


S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


class HasStatus(Protocol):
    id: Any
    status: Any


class StateMachine(Generic[S, E]):
    def __init__(self, entity: str, states: type[S], table: Mapping[tuple[S, E], S]) -> None:
        self.entity = entity
        self.states = states
        self.table = dict(table)

    def next(self, state: S, event: E, ident: object = "?") -> S:
        try:
            return self.table[(state, event)]
        except KeyError:
            raise IllegalTransition(self.entity, ident, str(state), str(event)) from None

    def allowed(self, state: S, event: E) -> bool:
        return (state, event) in self.table

    def sources(self, event: E) -> dict[S, S]:
        """For ``event``: each state it may fire in, mapped to the state it leads to."""
        return {s: t for (s, e), t in self.table.items() if e == event}

    def fire(self, obj: HasStatus, event: E) -> S:
        obj.status = self.next(self.states(obj.status), event, obj.id)
        return obj.status  # type: ignore[no-any-return]

    def fire_where(
        self,
        session: Session,
        model: Any,
        where: ColumnElement[bool],
        event: E,
        values: Mapping[str, Any] | None = None,
    ) -> int:
        """Fire ``event`` on every row of ``model`` matching ``where``, in bulk; all or none.

        ``values`` are further columns set in the same UPDATE (one pass over a million rows, not two).
        Raises :class:`IllegalTransition` naming the first row whose state does not allow the event.
        Returns the number of rows changed.
        """
        sources = self.sources(event)
        bad = session.execute(
            select(model.id, model.status).where(where, model.status.not_in(list(sources))).limit(1)
        ).first()
        if bad is not None:
            raise IllegalTransition(self.entity, bad[0], str(bad[1]), str(event))
        changed = 0
        by_target: dict[S, list[S]] = {}
        for source, target in sources.items():
            by_target.setdefault(target, []).append(source)
        for target, from_states in by_target.items():
            result = session.execute(
                update(model)
                .where(where, model.status.in_(from_states))
                .values({**(values or {}), "status": target})
                .execution_options(synchronize_session=False)
            )
            changed += result.rowcount  # type: ignore[attr-defined]
        return changed

    def fire_ids(
        self,
        session: Session,
        model: Any,
        ids: Iterable[int],
        event: E,
        values: Mapping[str, Any] | None = None,
        chunk: int = 5000,
    ) -> int:
        """:meth:`fire_where` over a list of ids: on PostgreSQL in one statement (the ids as one array
        parameter, however many millions), elsewhere in chunks that the parameter limit admits."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        if session.get_bind().dialect.name == "postgresql":
            array = bindparam("fire_ids", ids, type_=ARRAY(BigInteger))
            return self.fire_where(session, model, model.id == any_(array), event, values)
        return sum(
            self.fire_where(session, model, model.id.in_(ids[i : i + chunk]), event, values)
            for i in range(0, len(ids), chunk)
        )


def _table(rows: Iterable[tuple[Iterable[S], E, S]]) -> dict[tuple[S, E], S]:
    out: dict[tuple[S, E], S] = {}
    for sources, event, target in rows:
        for source in sources:
            out[(source, event)] = target
    return out


_O = OrderState
ORDER = StateMachine(
    "order",
    OrderState,
    _table(
        [
            ([_O.CREATED], OrderEvent.PAY, _O.PAID),
            ([_O.PAID], OrderEvent.BATCH, _O.BATCHED),
            ([_O.BATCHED, _O.ALLOCATED], OrderEvent.RELEASE, _O.PAID),
            ([_O.BATCHED], OrderEvent.ALLOCATE, _O.ALLOCATED),
            ([_O.ALLOCATED], OrderEvent.START_PRODUCTION, _O.IN_PRODUCTION),
            ([_O.ALLOCATED, _O.IN_PRODUCTION], OrderEvent.PACK, _O.PACKED),
            ([_O.PACKED], OrderEvent.PICK_UP, _O.SHIPPED),
            ([_O.SHIPPED], OrderEvent.DELIVER, _O.DELIVERED),
            (
                [_O.CREATED, _O.PAID, _O.BATCHED, _O.ALLOCATED, _O.IN_PRODUCTION, _O.PACKED],
                OrderEvent.CANCEL,
                _O.CANCELLED,
            ),
        ]
    ),
)

_W = WorkOrderState
WORK_ORDER = StateMachine(
    "work order",
    WorkOrderState,
    _table(
        [
            ([_W.PLANNED], WorkOrderEvent.START, _W.STARTED),
            ([_W.STARTED], WorkOrderEvent.PAUSE, _W.PAUSED),
            ([_W.PAUSED], WorkOrderEvent.RESUME, _W.STARTED),
            ([_W.STARTED], WorkOrderEvent.REPORT, _W.STARTED),
            ([_W.STARTED], WorkOrderEvent.COMPLETE, _W.COMPLETED),
            ([_W.PLANNED, _W.STARTED, _W.PAUSED], WorkOrderEvent.CANCEL, _W.CANCELLED),
        ]
    ),
)

_B = BatchState
BATCH = StateMachine(
    "batch",
    BatchState,
    _table(
        [
            ([_B.OPEN], BatchEvent.CLOSE, _B.CLOSED),
            ([_B.CLOSED], BatchEvent.PLAN, _B.PLANNED),
            ([_B.CLOSED], BatchEvent.FAIL, _B.FAILED),
        ]
    ),
)

_P = ParcelState
PARCEL = StateMachine(
    "parcel",
    ParcelState,
    _table(
        [
            ([_P.PLANNED], ParcelEvent.PACK, _P.PACKED),
            ([_P.PACKED], ParcelEvent.PICK_UP, _P.PICKED_UP),
            ([_P.PICKED_UP], ParcelEvent.TRANSIT, _P.IN_TRANSIT),
            ([_P.PICKED_UP, _P.IN_TRANSIT], ParcelEvent.DELIVER, _P.DELIVERED),
            ([_P.PLANNED, _P.PACKED], ParcelEvent.CANCEL, _P.CANCELLED),
        ]
    ),
)
