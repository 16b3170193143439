"""Waybills, pickups, tracking and labels through the real adapters against the courier fakes, on both
backends: idempotent retries, backoff then success, refusals kept as exceptions, bookings and standing
rounds, the tracking webhook (signature, dedupe, pickup write-back, delivery), and the label endpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, update

from fulfil import db
from fulfil.api.app import create_app
from fulfil.dispatch import accounts, pickups, waybills
from fulfil.dispatch.assign import assign_couriers
from fulfil.dispatch.simulate import EXTRA
from fulfil.domain.models import (
    ExceptionItem,
    Order,
    OutboxJob,
    Parcel,
    Pickup,
    ShipConfirmation,
    SiteKind,
    TrackingEvent,
    Waybill,
)
from fulfil.domain.states import OrderState, ParcelState
from fulfil.intake import platforms
from fulfil.pii import Sealer
from integrations.couriers.base import CourierCredential, TrackingStatus
from integrations.fakes.couriers import CourierFailure, CourierFakes, fake_for
from tests.conftest import Backend
from tests.dispatch_support import DAY, PointSpec, add_belt, add_packed_parcels

NOW = dt.datetime(2026, 11, 24, 8, 0)
APIS = ("ZTO", "SF", "CAINIAO")


@pytest.fixture
def fakes(clean: Backend) -> Iterator[CourierFakes]:
    sealer = Sealer(clean.settings.pii_key)
    creds = []
    with db.session_scope(clean.engine) as s:
        for api in APIS:
            key, secret = f"k-{api}", f"secret-{api}"
            accounts.add_account(s, sealer, api, key, secret, EXTRA[api])
            creds.append(CourierCredential(api, key, secret, EXTRA[api]))
    every = CourierFakes(*(fake_for(c) for c in creds))
    platforms.set_http_client_factory(lambda name: every.client())
    try:
        yield every
    finally:
        platforms.reset()


def _waybill_jobs(backend: Backend) -> list[tuple[int, int]]:
    with backend.engine.connect() as c:
        return [
            (int(a[0]), int(a[1]))
            for a in c.execute(select(OutboxJob.args).where(OutboxJob.task == "request_waybills")).scalars()
        ]


def _dispatched(backend: Backend, couriers: list[str], n: int = 2) -> list[int]:
    belt = add_belt(backend.engine, [PointSpec(c, quota=100) for c in couriers])
    parcels = add_packed_parcels(
        backend.engine, Sealer(backend.settings.pii_key), [(SiteKind.WORKSHOP, belt.workshops[0])] * n
    )
    with db.session_scope(backend.engine) as s:
        assign_couriers(s, DAY, now=NOW)
    return parcels


def test_waybills_are_issued_once_and_a_second_run_changes_nothing(
    clean: Backend, fakes: CourierFakes
) -> None:
    parcels = _dispatched(clean, ["ZTO"], n=3)
    ((lo, hi),) = _waybill_jobs(clean)
    assert waybills.request_waybills(lo, hi) == {"issued": 3, "retry": 0, "failed": 0}
    assert waybills.request_waybills(lo, hi) == {"issued": 0, "retry": 0, "failed": 0}  # nothing pending
    with clean.engine.connect() as c:
        rows = c.execute(select(Waybill.parcel_id, Waybill.tracking_number, Waybill.status)).all()
    assert sorted(r.parcel_id for r in rows) == sorted(parcels)
    assert {r.status for r in rows} == {"issued"} and len({r.tracking_number for r in rows}) == 3
    assert len(fakes["ZTO"].waybills) == 3
    # the fake saw our receiver unsealed (only in memory, for the call) and the site's phone as sender
    order = next(iter(fakes["ZTO"].waybills.values())).order
    assert "13812345678" in str(order) and "13900001111" in str(order)


def test_a_timeout_is_retried_after_backoff_with_the_same_request(
    clean: Backend, fakes: CourierFakes
) -> None:
    _dispatched(clean, ["SF"], n=1)
    ((lo, hi),) = _waybill_jobs(clean)
    fakes["SF"].fail_next(CourierFailure.LOST_ANSWER)  # SF made the waybill, its answer never came
    assert waybills.request_waybills(lo, hi) == {"issued": 0, "retry": 1, "failed": 0}
    with clean.engine.connect() as c:
        row = c.execute(select(Waybill.attempts, Waybill.next_attempt_at, Waybill.last_error)).one()
    assert row.attempts == 1 and row.next_attempt_at > dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert waybills.request_waybills(lo, hi)["retry"] == 0  # not due yet: nothing happens
    with db.session_scope(clean.engine) as s:  # the backoff has passed: the sweep enqueues it again
        assert waybills.requeue_due(s, now=row.next_attempt_at + dt.timedelta(seconds=1)) == 1
        s.execute(update(Waybill).values(next_attempt_at=NOW))
    assert waybills.request_waybills(lo, hi) == {"issued": 1, "retry": 0, "failed": 0}
    assert len(fakes["SF"].waybills) == 1  # the retry found the first waybill: one, not two


def test_a_refusal_fails_the_waybill_with_an_exception_naming_the_reason(
    clean: Backend, fakes: CourierFakes
) -> None:
    parcels = _dispatched(clean, ["ZTO"], n=1)
    ((lo, hi),) = _waybill_jobs(clean)
    fakes["ZTO"].fail_next(CourierFailure.BUSINESS)
    assert waybills.request_waybills(lo, hi) == {"issued": 0, "retry": 0, "failed": 1}
    with clean.engine.connect() as c:
        item = c.execute(select(ExceptionItem.kind, ExceptionItem.subject, ExceptionItem.reason)).one()
    assert (item.kind, item.subject) == ("waybill_failed", f"parcel {parcels[0]}")
    assert item.reason.startswith("ZTO:")


def test_no_account_with_the_courier_api_is_an_exception(clean: Backend, fakes: CourierFakes) -> None:
    _dispatched(clean, ["JD"], n=1)  # no JD account registered
    ((lo, hi),) = _waybill_jobs(clean)
    assert waybills.request_waybills(lo, hi)["failed"] == 1
    with clean.engine.connect() as c:
        assert "no active account with the JD API" in c.execute(select(ExceptionItem.reason)).scalar_one()


def _waybilled_and_scheduled(clean: Backend, couriers: list[str]) -> list[int]:
    parcels = _dispatched(clean, couriers, n=2)
    for lo, hi in _waybill_jobs(clean):
        waybills.request_waybills(lo, hi)
    with db.session_scope(clean.engine) as s:
        report = pickups.schedule_pickups(s, DAY, now=NOW)
    assert report.parcels == 2 and report.pickups >= 1
    return parcels


def test_pickups_are_booked_with_the_courier_or_left_to_the_standing_round(
    clean: Backend, fakes: CourierFakes
) -> None:
    _waybilled_and_scheduled(clean, ["ZTO"])
    with clean.engine.connect() as c:
        (pickup_id,) = c.execute(select(Pickup.id)).scalars()
    fakes["ZTO"].fail_next(CourierFailure.SERVER_ERROR)
    assert pickups.book_pickup(pickup_id) == "requested"  # 5xx: tried again later
    with db.session_scope(clean.engine) as s:
        s.execute(update(Pickup).values(next_attempt_at=NOW))
    assert pickups.book_pickup(pickup_id) == "booked"
    assert pickups.book_pickup(pickup_id) == "booked"  # done: left alone
    with clean.engine.connect() as c:
        ref, count = c.execute(select(Pickup.booking_ref, Pickup.parcel_count)).one()
    assert ref and count == 2 and len(fakes["ZTO"].pickups) == 1


def test_a_courier_without_bookings_collects_on_its_standing_round(
    clean: Backend, fakes: CourierFakes
) -> None:
    _waybilled_and_scheduled(clean, ["STO"])  # STO's waybills come from Cainiao, which books no pickups
    with clean.engine.connect() as c:
        (pickup_id,) = c.execute(select(Pickup.id)).scalars()
    assert pickups.book_pickup(pickup_id) == "standing"


@pytest.fixture
def client(clean: Backend) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(clean.settings)) as c:
        yield c


def test_tracking_pushes_pick_up_ship_and_deliver_through_the_webhook(
    clean: Backend, fakes: CourierFakes, client: TestClient[Litestar]
) -> None:
    from fulfil.dispatch.tracking import apply_tracking

    parcels = _waybilled_and_scheduled(clean, ["ZTO"])
    with clean.engine.connect() as c:
        numbers = dict(c.execute(select(Waybill.parcel_id, Waybill.tracking_number)).all())
    zto = fakes["ZTO"]
    first = numbers[parcels[0]]

    headers, body = zto.push(first, TrackingStatus.PICKED_UP, at=NOW + dt.timedelta(hours=9))
    bad_headers, bad_body = zto.push(first, TrackingStatus.PICKED_UP, secret="not-ours")
    refused = client.post("/webhooks/couriers/zto", content=bad_body, headers=bad_headers)
    assert refused.status_code == 401
    for _ in range(2):  # the courier redelivers: stored once
        answer = client.post("/webhooks/couriers/zto", content=body, headers=headers)
        assert answer.status_code == 200
    assert client.post("/webhooks/couriers/nobody", content=body, headers=headers).status_code == 404
    with clean.engine.connect() as c:
        events = c.execute(select(TrackingEvent.id, TrackingEvent.state)).all()
        jobs = c.execute(select(OutboxJob.args).where(OutboxJob.task == "apply_tracking")).scalars().all()
    assert [e.state for e in events] == ["received"] and len(jobs) == 1
    assert apply_tracking(*jobs[0]) == {"applied": 1, "ignored": 0, "exception": 0}
    assert apply_tracking(*jobs[0]) == {"applied": 0, "ignored": 0, "exception": 0}  # idempotent

    with clean.engine.connect() as c:
        status = dict(c.execute(select(Parcel.id, Parcel.status)).all())
        confirmation = c.execute(select(ShipConfirmation.parcel_id, ShipConfirmation.tracking_number)).one()
        order_status = c.execute(
            select(Order.status).join(Parcel, Parcel.order_id == Order.id).where(Parcel.id == parcels[0])
        ).scalar_one()
    assert status[parcels[0]] == ParcelState.PICKED_UP and status[parcels[1]] == ParcelState.PACKED
    assert tuple(confirmation) == (parcels[0], first)  # the platform write-back of the intake issue
    assert order_status == OrderState.SHIPPED

    # delivered without an in-transit scan: the step is implied; an unknown number is kept as an exception
    for number, what in ((first, TrackingStatus.DELIVERED), ("ZT000000000000", TrackingStatus.IN_TRANSIT)):
        h, b = zto.push(number, what, at=NOW + dt.timedelta(days=2))
        assert client.post("/webhooks/couriers/zto", content=b, headers=h).status_code == 200
    counts = {"applied": 0, "ignored": 0, "exception": 0}
    with clean.engine.connect() as c:
        for args in c.execute(select(OutboxJob.args).where(OutboxJob.task == "apply_tracking")).scalars():
            for k, v in apply_tracking(*args).items():
                counts[k] += v
    assert counts == {"applied": 1, "ignored": 0, "exception": 1}
    with clean.engine.connect() as c:
        assert (
            c.execute(select(Parcel.status).where(Parcel.id == parcels[0])).scalar_one()
            == ParcelState.DELIVERED
        )
        order_status = c.execute(
            select(Order.status).join(Parcel, Parcel.order_id == Order.id).where(Parcel.id == parcels[0])
        ).scalar_one()
        kinds = c.execute(select(ExceptionItem.kind, ExceptionItem.reason)).all()
    assert order_status == OrderState.DELIVERED
    assert [k for k, _ in kinds] == ["tracking_exception"] and "ZT000000000000" in kinds[0][1]


def test_the_label_endpoint_prints_a_pdf_once_the_waybill_is_back(
    clean: Backend, fakes: CourierFakes, client: TestClient[Litestar]
) -> None:
    parcels = _dispatched(clean, ["ZTO"], n=1)
    assert client.get(f"/api/parcels/{parcels[0]}/label.pdf").status_code == 409
    assert client.get("/api/parcels/999999/label.pdf").status_code == 404
    for lo, hi in _waybill_jobs(clean):
        waybills.request_waybills(lo, hi)
    answer = client.get(f"/api/parcels/{parcels[0]}/label.pdf")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF")  # its content and masking: tests/test_labels.py
    with db.session_scope(clean.engine) as s:
        pickups.schedule_pickups(s, DAY, now=NOW)
        (pickup_id,) = s.scalars(select(Pickup.id))
    sheet = client.get(f"/api/pickups/{pickup_id}/labels.pdf")
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF"), sheet.text
    assert client.get("/api/pickups/424242/labels.pdf").status_code == 404
