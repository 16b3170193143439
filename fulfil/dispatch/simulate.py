"""The demo's couriers: fake courier APIs (:mod:`integrations.fakes.couriers`) behind the real adapters, and a
day of dispatch run through the real services and jobs.

:class:`DemoCouriers` registers an account with every courier API (fresh secrets, sealed like real ones)
and routes the API clients of this process to the fakes, which check every signature as the couriers do.
:meth:`DemoCouriers.run_day` then dispatches one belt day: couriers for the packed parcels, their waybill
jobs, pickup windows and their booking jobs — each job through the outbox and an in-process burst worker on
the ``dispatch`` queue — and finally the couriers' scans: each collected parcel's *picked up* (and then
*in transit*) comes back as the courier's own signed push, verified and applied by the tracking receiver,
which also writes the ship confirmations for the platforms.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import redis
from rq import SimpleWorker
from sqlalchemy import Engine, func, select

from fulfil import db
from fulfil.dispatch import accounts, tracking
from fulfil.dispatch.assign import assign_couriers
from fulfil.dispatch.pickups import schedule_pickups
from fulfil.domain.models import Courier, CourierPoint, Pickup, PickupParcel, Waybill
from fulfil.intake import platforms
from fulfil.jobs import outbox
from fulfil.pii import Sealer
from integrations.couriers import registry
from integrations.couriers.base import CourierCredential, TrackingStatus
from integrations.fakes.couriers import CourierFakes, fake_for

# What each API's adapter needs besides key and secret (see the adapter modules).
EXTRA: dict[str, dict[str, str]] = {
    "ZTO": {},
    "SF": {"monthly_card": "7551234567"},
    "JD": {"access_token": "demo-token", "customer_code": "010K123456"},
    "YUNDA": {},
    "YTO": {"user_id": "K21000119"},
    "CAINIAO": {"user_id": "2200001", "template_url": "http://cloudprint.cainiao.com/template/standard/101"},
}


@dataclass
class DispatchDay:
    day: dt.date
    assign: dict[str, Any] = field(default_factory=dict)
    pickups: dict[str, Any] = field(default_factory=dict)
    scans: int = 0


class DemoCouriers:
    """Accounts with every courier API, their fakes, and the clients of this process routed to them."""

    def __init__(self, engine: Engine, sealer: Sealer, connection: redis.Redis, seed: int = 0) -> None:
        self.engine, self.sealer, self.connection = engine, sealer, connection
        credentials = []
        with db.session_scope(engine) as session:
            for api in registry.ADAPTERS:
                key, secret = f"demo-{api.lower()}", secrets.token_hex(16)
                accounts.add_account(session, sealer, api, key, secret, EXTRA.get(api, {}))
                credentials.append(CourierCredential(api, key, secret, EXTRA.get(api, {})))
        self.fakes = CourierFakes(*(fake_for(c, seed=seed) for c in credentials))
        self._previous: Any = None

    def __enter__(self) -> DemoCouriers:
        platforms.set_http_client_factory(self._client)
        return self

    def __exit__(self, *exc: object) -> None:
        platforms.reset()

    def _client(self, name: str) -> httpx.Client:
        if not name.startswith("courier:"):
            raise LookupError(f"the demo's couriers serve courier APIs only, not {name!r}")
        return self.fakes.client()

    def _work(self) -> None:
        outbox.drain(self.engine, self.connection)
        SimpleWorker(["dispatch"], connection=self.connection).work(burst=True, logging_level="WARNING")

    def run_day(self, day: dt.date) -> DispatchDay:
        out = DispatchDay(day)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with db.session_scope(self.engine) as session:
            out.assign = asdict(assign_couriers(session, day, now=now))
        self._work()  # waybills
        with db.session_scope(self.engine) as session:
            out.pickups = asdict(schedule_pickups(session, day, now=now))
        self._work()  # bookings
        out.scans = self._collect(day)
        self._work()  # scans applied
        return out

    def _collect(self, day: dt.date) -> int:
        """Every pickup of the day that is booked or on a standing round is collected in its window: the
        courier scans each parcel picked up, then in transit after the cut-off."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(Waybill.tracking_number, Courier.code, Pickup.window_start, Pickup.window_end)
                .join(PickupParcel, PickupParcel.parcel_id == Waybill.parcel_id)
                .join(Pickup, Pickup.id == PickupParcel.pickup_id)
                .join(CourierPoint, CourierPoint.id == Pickup.courier_point_id)
                .join(Courier, Courier.id == CourierPoint.courier_id)
                .where(Pickup.day == day, Pickup.status.in_(["booked", "standing"]))
                .order_by(Waybill.parcel_id)
            ).all()
        pushes: dict[str, list[tuple[Any, bytes]]] = defaultdict(list)
        for number, code, start, end in rows:
            if not number:
                continue
            api = registry.adapter_for(code)
            fake = self.fakes[api]
            for status, at in ((TrackingStatus.PICKED_UP, start), (TrackingStatus.IN_TRANSIT, end)):
                headers, body = fake.push(number, status, at=at + dt.timedelta(minutes=20))
                pushes[api].append((headers, body))
        for api, batch in pushes.items():
            tracking.receive_many(self.engine, self.sealer, api, batch)
        return sum(len(b) for b in pushes.values())


def counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Waybills and pickups by status, for the demo's report."""
    with engine.connect() as c:
        return {
            "waybills": {
                s: int(n) for s, n in c.execute(select(Waybill.status, func.count()).group_by(Waybill.status))
            },
            "pickups": {
                s: int(n) for s, n in c.execute(select(Pickup.status, func.count()).group_by(Pickup.status))
            },
        }
