"""Read endpoints of the dashboard: why a batch's plan is what it is, and why a decision was taken.

- ``GET /api/batches/{id}/explanation``: the batch's latest solver run (objective, bound, gap, time, costs),
  its shadow prices (fen one more minute of a workshop's family on a day would save) and its late or unfilled
  orders with the constraint that kept each from ship-by; ``limit`` caps each list (highest price, most
  pieces first), the counts say how many there are.
- ``GET /api/decisions/{id}/explanation``: an allocation decision's cost breakdown and its runner-up.

Thin: the queries are :mod:`fulfil.planning.explain`'s; an unknown id is a 404 that names it.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, Parameter
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.api.resources import Resources
from fulfil.db import sessionmaker_for
from fulfil.planning.explain import (
    BatchExplanation,
    DecisionExplanationOut,
    ExplanationNotFound,
    batch_explanation,
    decision_explanation,
)

MAX_LIMIT = 5000


def _session(resources: Resources) -> Session:
    return sessionmaker_for(resources.engine())()


def _unavailable() -> HTTPException:
    return HTTPException(status_code=503, detail="the database is unavailable; retry later")


class ExplanationController(Controller):
    path = "/api"
    tags = ("dashboard",)

    @get(
        "/batches/{batch_id:int}/explanation",
        sync_to_thread=True,
        summary="A batch's plan explained: solver run, shadow prices, late and unfilled orders",
    )
    def batch(
        self,
        batch_id: FromPath[int],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = 200,
    ) -> BatchExplanation:
        try:
            with _session(resources) as session:
                return batch_explanation(session, batch_id, limit=limit)
        except ExplanationNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except Exception as exc:
            if db.unavailable(exc):
                raise _unavailable() from None
            raise

    @get(
        "/decisions/{decision_id:int}/explanation",
        sync_to_thread=True,
        summary="An allocation decision explained: its cost by part and the cheapest other way",
    )
    def decision(
        self, decision_id: FromPath[int], resources: NamedDependency[Resources]
    ) -> DecisionExplanationOut:
        try:
            with _session(resources) as session:
                return decision_explanation(session, decision_id)
        except ExplanationNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except Exception as exc:
            if db.unavailable(exc):
                raise _unavailable() from None
            raise
