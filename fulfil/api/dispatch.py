"""Dispatch endpoints: courier tracking pushes in, shipping labels out.

- ``POST /webhooks/couriers/{api}``: a tracking push from a courier's API (``zto``, ``sf``, ``jd``,
  ``yunda``, ``yto``, ``cainiao``), verified over the raw bytes and stored before it is answered
  (:func:`fulfil.dispatch.tracking.receive`).
- ``GET /api/parcels/{id}/label.pdf``: the parcel's 100×150 mm label, receiver masked
  (:mod:`fulfil.dispatch.printing`); 409 while it has no waybill number. ``GET /api/pickups/{id}/labels.pdf``:
  the labels of a pickup's parcels, in parcel order.

Thin: the logic is in :mod:`fulfil.dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, RawBody
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.api import errors
from fulfil.api.resources import Resources
from fulfil.db import sessionmaker_for
from fulfil.dispatch import printing, tracking
from fulfil.intake.receivers import MAX_BODY_BYTES
from fulfil.pii import Sealer


class TrackingController(Controller):
    path = "/webhooks/couriers"
    tags = ("dispatch",)
    request_max_body_size = MAX_BODY_BYTES

    @post("/{api:str}", status_code=200, sync_to_thread=True, summary="A courier's tracking push")
    def push(
        self,
        api: FromPath[str],
        request: Request[Any, Any, Any],
        body: RawBody,
        resources: NamedDependency[Resources],
    ) -> Response[Any]:
        try:
            answer = tracking.receive(
                resources.engine(),
                Sealer(resources.settings.pii_key),
                api,
                dict(request.headers.items()),
                body,
            )
        except tracking.UnknownCourier as exc:
            return errors.error_response(404, "not_found", str(exc))
        except Exception as exc:
            if db.unavailable(exc):
                return errors.error_response(
                    503, "service_unavailable", "the database is unavailable; retry", {"Retry-After": "5"}
                )
            raise
        if answer.status == 401:
            return errors.error_response(401, "bad_signature", answer.body.decode(errors="replace"))
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


def _pdf(resources: Resources, what: str, parcels: Callable[[Session], list[int]]) -> Response[bytes]:
    try:
        with sessionmaker_for(resources.engine())() as session:
            pdf = printing.parcel_labels(session, Sealer(resources.settings.pii_key), parcels(session))
    except printing.NoLabel as exc:
        if exc.missing:
            raise NotFoundException(str(exc)) from None
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except Exception as exc:
        if db.unavailable(exc):
            raise HTTPException(status_code=503, detail="the database is unavailable; retry later") from None
        raise
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{what}.pdf"'}
    )


class LabelController(Controller):
    path = "/api"
    tags = ("dispatch",)

    @get("/parcels/{parcel_id:int}/label.pdf", sync_to_thread=True, summary="A parcel's shipping label (PDF)")
    def label(self, parcel_id: FromPath[int], resources: NamedDependency[Resources]) -> Response[bytes]:
        return _pdf(resources, f"parcel-{parcel_id}", lambda _s: [parcel_id])

    @get(
        "/pickups/{pickup_id:int}/labels.pdf",
        sync_to_thread=True,
        summary="The labels of every parcel a pickup collects, a page each (PDF)",
    )
    def pickup_labels(
        self, pickup_id: FromPath[int], resources: NamedDependency[Resources]
    ) -> Response[bytes]:
        return _pdf(resources, f"pickup-{pickup_id}", lambda s: printing.pickup_parcels(s, pickup_id))
