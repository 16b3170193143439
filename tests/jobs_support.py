"""Helpers for the outbox, worker and batching tests: a pool of orders, subprocesses on the test backend."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, insert, select

from fulfil.domain.models import Merchant, Order, Platform, PlatformShop
from fulfil.domain.states import OrderState
from tests.conftest import Backend

FULFIL = str(Path(sys.executable).with_name("fulfil"))
T0 = dt.datetime(2026, 11, 23, 20, 0)  # an evening live stream


def add_orders(
    engine: Engine,
    paid_at: Sequence[dt.datetime | None],
    status: OrderState = OrderState.PAID,
    first: int = 0,
) -> list[int]:
    """Insert one order per ``paid_at`` (in bulk, no ORM objects) and return their ids in that order."""
    with engine.begin() as conn:
        shop = conn.execute(select(PlatformShop.id, PlatformShop.merchant_id)).first()
        if shop is None:
            mid = conn.execute(
                insert(Merchant)
                .values(code="M1", name="常熟服饰", town="虞山", lon=120.74, lat=31.65, pools_stock=False)
                .returning(Merchant.id)
            ).scalar_one()
            sid = conn.execute(
                insert(PlatformShop)
                .values(platform=Platform.DOUDIAN, shop_code="4463798", name="旗舰店", merchant_id=mid)
                .returning(PlatformShop.id)
            ).scalar_one()
        else:
            sid, mid = shop
        rows = [
            {
                "platform": Platform.DOUDIAN,
                "shop_id": sid,
                "platform_order_id": f"69{first + i:012d}",
                "merchant_id": mid,
                "status": status,
                "created_at": (p or T0) - dt.timedelta(minutes=1),
                "paid_at": p,
                "ship_by": (p or T0) + dt.timedelta(hours=48),
                "presale": False,
                "province": "44",
                "city": "广州",
                "receiver_sealed": b"sealed",
            }
            for i, p in enumerate(paid_at)
        ]
        if rows:
            conn.execute(insert(Order), rows)
        numbers = [str(r["platform_order_id"]) for r in rows]
        found = {
            number: oid
            for number, oid in conn.execute(
                select(Order.platform_order_id, Order.id).where(Order.platform_order_id.in_(numbers))
            )
        }
    return [found[n] for n in numbers]


def subprocess_env(backend: Backend) -> dict[str, str]:
    """The environment a child process needs to reach exactly this backend."""
    env = {**os.environ, **backend.env}
    if "DATABASE_URL" not in backend.env:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_python(backend: Backend, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=subprocess_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_fulfil(backend: Backend, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FULFIL, *args],
        env=subprocess_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
