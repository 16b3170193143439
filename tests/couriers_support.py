"""Shared by the courier adapter tests: credentials, fakes, each adapter's client, canonical requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx

from integrations.base import Address
from integrations.couriers import jdl, registry, sf, yto, yunda, zto
from integrations.couriers.base import CourierApi, CourierCredential, Item, PickupRequest, WaybillRequest
from integrations.fakes.couriers import FakeCourier, fake_for

T0 = 1718712000.0  # 2024-06-18 12:00:00 UTC, 20:00 in Changshu
NOW = dt.datetime(2024, 6, 18, 12, 0, 0)

CREDENTIALS = {
    "ZTO": CourierCredential("ZTO", "zto-app-1", "zto-secret-77"),
    "SF": CourierCredential("SF", "SFPARTNER1", "fc34c561a34f", {"monthly_card": "7551234567"}),
    "JD": CourierCredential(
        "JD", "jd-key", "jd-secret", {"access_token": "tok-1", "customer_code": "010K1234"}
    ),
    "YUNDA": CourierCredential(
        "YUNDA", "100001", "yd-secret-9", {"partner_id": "529951202001", "partner_secret": "bm-pass"}
    ),
    "CAINIAO": CourierCredential(
        "CAINIAO", "cn-token-1", "cn-secret", {"user_id": "2200001", "template_url": "https://t.example/101"}
    ),
    "YTO": CourierCredential("YTO", "yto-app", "yto-secret", {"user_id": "K21000119"}),
}
ADAPTERS = list(CREDENTIALS)
PICKUP_ADAPTERS = ["ZTO", "SF", "JD", "YUNDA"]
# Each courier's own code for a bad signature (its fake answers in the courier's error shape).
SIGNATURE_CODES = {
    "ZTO": "S211",
    "SF": "A1006",
    "JD": "1004",
    "YUNDA": "1002",
    "CAINIAO": "S02",
    "YTO": "S02",
}

SITE = Address("常熟虞山服饰厂", "051252001234", "江苏省", "苏州市", "常熟市", "虞山街道海虞北路88号")
BUYER = Address("王芳", "13812345678", "广东省", "广州市", "天河区", "体育西路191号中石化大厦B座2801")


def credential(adapter: str, secret: str | None = None) -> CourierCredential:
    base = CREDENTIALS[adapter]
    return base if secret is None else CourierCredential(base.courier, base.app_key, secret, base.extra)


def make(adapter: str, seed: int = 0) -> FakeCourier:
    return fake_for(CREDENTIALS[adapter], seed=seed, now=NOW)


def api(fake: FakeCourier, cred: CourierCredential | None = None) -> CourierApi:
    creds = cred or fake.credential
    client = httpx.Client(transport=fake.transport())
    if creds.courier == "CAINIAO":
        return registry.api_for(creds, client)
    # The adapters' own constructors, with a fixed clock (the registry builds them with the real one).
    kinds: dict[str, Callable[..., CourierApi]] = {
        "ZTO": zto.ZtoApi,
        "SF": sf.SfApi,
        "JD": jdl.JdlApi,
        "YUNDA": yunda.YundaApi,
        "YTO": yto.YtoApi,
    }
    return kinds[creds.courier](creds, client, clock=lambda: T0)


def waybill_request(request_id: str = "wb-20240618-0001", parcel: str = "P1001") -> WaybillRequest:
    return WaybillRequest(
        request_id=request_id,
        parcel_ref=parcel,
        sender=SITE,
        receiver=BUYER,
        items=[Item("针织开衫 黑 M", 1, 420), Item("围巾", 1, 180)],
        weight_g=650,
        carrier="STO",  # read by Cainiao only
    )


def pickup_request(request_id: str = "pk-20240619-site7") -> PickupRequest:
    return PickupRequest(
        request_id=request_id,
        site_ref="WS-0007",
        sender=SITE,
        window_start=dt.datetime(2024, 6, 19, 1, 0),  # 09:00 in Changshu
        window_end=dt.datetime(2024, 6, 19, 3, 0),
        parcel_count=120,
        total_weight_g=78_000,
    )


def stored(fake: FakeCourier) -> list[str]:
    return sorted(w.tracking_number for w in fake.waybills.values())
