"""The ``dispatch_due`` task: what the workers' periodic tick does for dispatch.

Each run, for the belt's current day: couriers for the parcels packed since the last run
(:func:`fulfil.dispatch.assign.assign_couriers`), then pickup windows for the parcels whose waybills have
come back (:func:`fulfil.dispatch.pickups.schedule_pickups`). Each step is its own transaction and picks
up exactly what is waiting, so a run that dies, or two at once, leave nothing half done; the next tick
takes what remains.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict
from typing import Any

from fulfil import db
from fulfil.dispatch.assign import assign_couriers
from fulfil.dispatch.pickups import schedule_pickups
from fulfil.planning.load import BELT_UTC_OFFSET

log = logging.getLogger(__name__)

TASK = "dispatch_due"


def belt_day(now: dt.datetime) -> dt.date:
    """The belt's local date at ``now`` (naive UTC)."""
    return (now + BELT_UTC_OFFSET).date()


def dispatch_due(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    day = belt_day(now)
    with db.session_scope() as session:
        assigned = assign_couriers(session, day, now=now)
    with db.session_scope() as session:
        pickups = schedule_pickups(session, day, now=now)
    summary = {"assign": asdict(assigned), "pickups": asdict(pickups)}
    if assigned.parcels or pickups.parcels:
        log.info("dispatch %s: %s", day, summary)
    return summary
