"""Couriers for packed parcels (fulfil.dispatch.assign) on both backends: cheapest point within its area and
quota, the spill to the next-cheapest when a quota runs out, cut-offs, restrictions flagged with their reason
once, and the waybill requests written with their jobs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from fulfil import db
from fulfil.dispatch.assign import AFTER_CUTOFF_TEXT, assign_couriers
from fulfil.domain.models import ExceptionItem, OutboxJob, Parcel, SiteKind, Waybill
from fulfil.pii import Sealer
from solvers.couriers import UNASSIGNED_TEXT, Unassigned
from tests.conftest import Backend
from tests.dispatch_support import DAY, PointSpec, add_belt, add_packed_parcels, local

NOW = dt.datetime(2026, 11, 24, 8, 0)


def _parcels(backend: Backend) -> dict[int, tuple[int | None, int | None, int | None, dt.date | None]]:
    with backend.engine.connect() as c:
        return {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in c.execute(
                select(
                    Parcel.id, Parcel.courier_id, Parcel.courier_point_id, Parcel.shipping_fen, Parcel.ship_on
                )
            )
        }


def test_cheapest_point_first_then_the_next_cheapest_when_its_quota_runs_out(clean: Backend) -> None:
    belt = add_belt(
        clean.engine, [PointSpec("STO", quota=3), PointSpec("ZTO", quota=10), PointSpec("SF", 10)]
    )
    sealer = Sealer(clean.settings.pii_key)
    parcels = add_packed_parcels(clean.engine, sealer, [(SiteKind.WORKSHOP, belt.workshops[0])] * 5)
    with db.session_scope(clean.engine) as s:
        report = assign_couriers(s, DAY, now=NOW)
    assert (report.parcels, report.assigned, report.unassigned) == (5, 5, {})
    got = _parcels(clean)
    sto, zto = belt.points[0], belt.points[1]
    # 800 g to Guangdong: STO 450 fen, ZTO 500, SF 1500; STO takes its quota of 3, ZTO the other 2
    assert sorted(got[p][1] for p in parcels) == [zto, zto, sto, sto, sto] or sorted(
        got[p][1] for p in parcels
    ) == sorted([sto, sto, sto, zto, zto])
    assert sorted(got[p][2] for p in parcels) == [450, 450, 450, 500, 500]
    assert report.shipping_fen == 3 * 450 + 2 * 500
    assert {got[p][3] for p in parcels} == {DAY}
    assert {got[p][0] for p in parcels if got[p][1] == sto} == {belt.couriers["STO"]}
    with clean.engine.connect() as c:
        waybills = c.execute(select(Waybill.parcel_id, Waybill.status, Waybill.request_id)).all()
        jobs = c.execute(select(OutboxJob.task, OutboxJob.args)).all()
    assert sorted(w.parcel_id for w in waybills) == sorted(parcels)
    assert {w.status for w in waybills} == {"pending"}
    assert len({w.request_id for w in waybills}) == 5
    assert [j.task for j in jobs] == ["request_waybills"] and len(jobs[0].args) == 2

    # the quota counts what the day already took: a second run with new parcels finds STO full
    more = add_packed_parcels(clean.engine, sealer, [(SiteKind.WAREHOUSE, belt.warehouse)], first=100)
    with db.session_scope(clean.engine) as s:
        again = assign_couriers(s, DAY, now=NOW)
    assert (again.parcels, again.assigned) == (1, 1)
    assert _parcels(clean)[more[0]][1] == zto


def test_restrictions_are_flagged_once_with_their_reason(clean: Backend) -> None:
    belt = add_belt(
        clean.engine,
        [PointSpec("JD", quota=100), PointSpec("SF", quota=100, lon=121.60, lat=31.20, radius_km=20)],
        sf_max_weight_g=30_000,
    )
    sealer = Sealer(clean.settings.pii_key)
    xinjiang = add_packed_parcels(
        clean.engine, sealer, [(SiteKind.WORKSHOP, belt.workshops[0])], province="65"
    )  # JD is the only point at the site, and it does not serve Xinjiang
    with db.session_scope(clean.engine) as s:
        report = assign_couriers(s, DAY, now=NOW)
    text = UNASSIGNED_TEXT[Unassigned.PROVINCE_NOT_SERVED]
    assert report.unassigned == {text: 1} and report.assigned == 0
    with db.session_scope(clean.engine) as s:
        assign_couriers(s, DAY, now=NOW)  # tried again: still no courier, still one exception
    with clean.engine.connect() as c:
        items = c.execute(select(ExceptionItem.kind, ExceptionItem.subject, ExceptionItem.reason)).all()
    assert items == [("no_courier", f"parcel {xinjiang[0]}", text)]
    assert _parcels(clean)[xinjiang[0]][1] is None


def test_a_parcel_packed_after_every_cutoff_waits_for_the_next_day_without_an_exception(
    clean: Backend,
) -> None:
    belt = add_belt(clean.engine, [PointSpec("ZTO", quota=100, cutoff=dt.time(17, 30))])
    sealer = Sealer(clean.settings.pii_key)
    early, late = (
        add_packed_parcels(
            clean.engine, sealer, [(SiteKind.WORKSHOP, belt.workshops[0])], packed_at=t, first=i
        )[0]
        for i, t in ((0, local(16, 0)), (10, local(17, 15)))
    )
    with db.session_scope(clean.engine) as s:
        report = assign_couriers(s, DAY, now=NOW)
    assert report.assigned == 1 and report.unassigned == {AFTER_CUTOFF_TEXT: 1}
    assert _parcels(clean)[early][1] == belt.points[0] and _parcels(clean)[late][1] is None
    with db.session_scope(clean.engine) as s:
        nxt = assign_couriers(s, DAY + dt.timedelta(days=1), now=NOW)  # packed yesterday: ready all day
    assert nxt.assigned == 1
    assert _parcels(clean)[late][3] == DAY + dt.timedelta(days=1)
    with clean.engine.connect() as c:
        assert c.execute(select(ExceptionItem.id)).first() is None
