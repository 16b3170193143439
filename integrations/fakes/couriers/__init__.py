"""Fake couriers for tests and the demo: each answers its courier's API as an ``httpx.MockTransport`` handler,
checks signatures like the courier (refusing a wrong one in the courier's own error shape), issues
deterministic, idempotent tracking numbers, books pickups, injects faults, and makes signed tracking pushes.

    fake = fake_for(credential)                     # ZtoFake, SfFake, ... by credential.courier
    api = registry.api_for(credential, fake.client())
    fake.fail_next(CourierFailure.TIMEOUT, times=2)
    headers, body = fake.push(number, TrackingStatus.DELIVERED)

:class:`CourierFakes` serves several fakes on one transport, routed by the host each adapter calls by default.
Nothing here touches the network or the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import httpx

from integrations.couriers.base import CourierCredential
from integrations.fakes.couriers.base import (
    DEFAULT_START,
    CourierFailure,
    FakeCourier,
    FakePickup,
    FakeWaybill,
    Push,
    Scan,
)
from integrations.fakes.couriers.cainiao import CainiaoFake
from integrations.fakes.couriers.jdl import JdlFake
from integrations.fakes.couriers.sf import SfFake
from integrations.fakes.couriers.yto import YtoFake
from integrations.fakes.couriers.yunda import YundaFake
from integrations.fakes.couriers.zto import ZtoFake

FAKES: Mapping[str, type[FakeCourier]] = {
    "ZTO": ZtoFake,
    "SF": SfFake,
    "JD": JdlFake,
    "YUNDA": YundaFake,
    "YTO": YtoFake,
    "CAINIAO": CainiaoFake,
}


def fake_for(
    credential: CourierCredential, *, seed: int = 0, now: dt.datetime = DEFAULT_START
) -> FakeCourier:
    """The fake of ``credential``'s adapter (``credential.courier``: ZTO, SF, JD, YUNDA, YTO or CAINIAO)."""
    try:
        make = FAKES[credential.courier]
    except KeyError:
        raise KeyError(f"no fake for {credential.courier!r}; fakes: {', '.join(FAKES)}") from None
    return make(credential, seed=seed, now=now)


class CourierFakes:
    """Several fakes behind one transport, each reached at its courier's production host."""

    def __init__(self, *fakes: FakeCourier) -> None:
        self.by_host = {fake.host: fake for fake in fakes}
        self.by_courier = {fake.courier: fake for fake in fakes}

    def handler(self, request: httpx.Request) -> httpx.Response:
        fake = self.by_host.get(request.url.host)
        if fake is None:
            return httpx.Response(502, text=f"no fake courier at {request.url.host}", request=request)
        return fake.handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def __getitem__(self, courier: str) -> FakeCourier:
        return self.by_courier[courier]


__all__ = [
    "FAKES",
    "CainiaoFake",
    "CourierFailure",
    "CourierFakes",
    "FakeCourier",
    "FakePickup",
    "FakeWaybill",
    "JdlFake",
    "Push",
    "Scan",
    "SfFake",
    "YtoFake",
    "YundaFake",
    "ZtoFake",
    "fake_for",
]
