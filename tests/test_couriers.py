"""Courier adapters against their fakes (``httpx.MockTransport``, no network, no patching): waybills, retries
with the same request id, faults, refusals, tracking pushes, and the registry.

Courier-specific wire details (field names, time formats, pickup slices) are in ``test_couriers_wire.py``;
known-answer signatures in ``test_couriers_signing.py``.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from integrations.base import ApiError, PayloadError, SignatureError
from integrations.couriers import cainiao, jdl, registry, sf, yto, yunda, zto
from integrations.couriers.base import PickupNotOffered, TrackingStatus
from integrations.couriers.client import SignedClient
from integrations.fakes.couriers import CainiaoFake, CourierFailure, CourierFakes, FakeCourier, Push
from tests.couriers_support import (
    ADAPTERS,
    CREDENTIALS,
    PICKUP_ADAPTERS,
    SIGNATURE_CODES,
    T0,
    api,
    credential,
    make,
    pickup_request,
    stored,
    waybill_request,
)

# --- waybills ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_waybill_round_trip_and_the_same_request_id_gets_the_same_number(adapter: str) -> None:
    fake = make(adapter)
    client = api(fake)
    first = client.create_waybill(waybill_request())
    again = client.create_waybill(waybill_request())
    other = client.create_waybill(waybill_request("wb-20240618-0002", "P1002"))
    assert first.tracking_number == again.tracking_number
    assert other.tracking_number != first.tracking_number
    assert stored(fake) == sorted([first.tracking_number, other.tracking_number])


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_answer_lost_after_the_courier_issued_gives_the_first_number_on_retry(adapter: str) -> None:
    fake = make(adapter)
    client = api(fake)
    fake.fail_next(CourierFailure.LOST_ANSWER)
    with pytest.raises(ApiError) as caught:
        client.create_waybill(waybill_request())
    assert (caught.value.retryable, caught.value.code) == (True, "timeout")
    assert len(fake.waybills) == 1  # the courier did issue it
    retried = client.create_waybill(waybill_request())
    assert [retried.tracking_number] == stored(fake)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    "failure, code",
    [
        (CourierFailure.TIMEOUT, "timeout"),
        (CourierFailure.SERVER_ERROR, "http_503"),
        (CourierFailure.RATE_LIMIT, "http_429"),
        (CourierFailure.GARBAGE, "bad_response"),
        (CourierFailure.BUSY, None),
    ],
)
def test_transient_faults_are_retryable_and_the_retry_succeeds(
    adapter: str, failure: str, code: str | None
) -> None:
    fake = make(adapter)
    client = api(fake)
    fake.fail_next(failure, times=2)
    for _ in range(2):
        with pytest.raises(ApiError) as caught:
            client.create_waybill(waybill_request())
        assert caught.value.retryable is True
        if code is not None:
            assert caught.value.code == code
    assert fake.waybills == {}
    assert client.create_waybill(waybill_request()).tracking_number == stored(fake)[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_business_refusal_is_not_retryable_and_names_the_couriers_code(adapter: str) -> None:
    fake = make(adapter)
    fake.fail_next(CourierFailure.BUSINESS)
    with pytest.raises(ApiError) as caught:
        api(fake).create_waybill(waybill_request())
    assert caught.value.retryable is False
    assert caught.value.code and caught.value.code not in ("timeout", "bad_response")
    assert caught.value.code in str(caught.value)
    assert fake.waybills == {}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_fake_refuses_a_wrong_secret_in_the_couriers_own_shape(adapter: str) -> None:
    fake = make(adapter)
    with pytest.raises(ApiError) as caught:
        api(fake, credential(adapter, "not-the-secret")).create_waybill(waybill_request())
    assert (caught.value.code, caught.value.retryable) == (SIGNATURE_CODES[adapter], False)
    assert fake.refused_signatures == 1 and fake.waybills == {}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_numbers_are_deterministic_by_seed(adapter: str) -> None:
    def numbers(seed: int, order: list[str]) -> dict[str, str]:
        client = api(make(adapter, seed))
        return {rid: client.create_waybill(waybill_request(rid)).tracking_number for rid in order}

    ids = [f"wb-{i}" for i in range(5)]
    assert numbers(3, ids) == numbers(3, list(reversed(ids)))  # the same id, the same number, in any order
    assert numbers(3, ids) != numbers(4, ids)


# --- pickups ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", PICKUP_ADAPTERS)
def test_pickup_booking_round_trip_is_idempotent(adapter: str) -> None:
    fake = make(adapter)
    client = api(fake)
    booking = client.book_pickup(pickup_request())
    again = client.book_pickup(pickup_request())
    assert booking == again and booking.booking_ref
    assert list(fake.pickups) == ["pk-20240619-site7"]
    recorded = fake.pickups["pk-20240619-site7"]
    assert recorded.window_start == booking.window_start  # the courier read our time format as we meant it
    assert (
        dt.datetime(2024, 6, 19, 1, 0)
        <= booking.window_start
        < booking.window_end
        <= dt.datetime(2024, 6, 19, 3)
    )


@pytest.mark.parametrize("adapter", ["CAINIAO", "YTO"])
def test_couriers_without_bookings_say_so(adapter: str) -> None:
    fake = make(adapter)
    with pytest.raises(PickupNotOffered):
        api(fake).book_pickup(pickup_request())
    assert not fake.calls


# --- tracking pushes --------------------------------------------------------------------------------------


def foreign_push(fake: FakeCourier, number: str, secret: str | None = None) -> Push:
    """A push for a number the fake did not issue (Cainiao then needs to be told the carrier)."""
    if isinstance(fake, CainiaoFake):
        return fake.push(number, TrackingStatus.DELIVERED, secret=secret, carrier="STO")
    return fake.push(number, TrackingStatus.DELIVERED, secret=secret)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("status", list(TrackingStatus))
def test_a_signed_push_verifies_and_parses(adapter: str, status: TrackingStatus) -> None:
    fake = make(adapter)
    number = api(fake).create_waybill(waybill_request()).tracking_number
    at = dt.datetime(2024, 6, 19, 2, 30, 5)
    headers, body = fake.push(number, status, at=at, description="快件已到达")
    receiver = registry.receiver_for(adapter)
    rotated = [credential(adapter, "old-secret"), CREDENTIALS[adapter]]
    assert receiver.verify(headers, body, rotated) == CREDENTIALS[adapter]
    (event,) = receiver.parse(headers, body)
    assert (event.tracking_number, event.status, event.occurred_at) == (number, status, at)
    assert event.courier == ("STO" if adapter == "CAINIAO" else adapter)
    assert event.description == "快件已到达"
    assert event.event_id
    # The same scan redelivered has the same dedupe key.
    assert (
        receiver.parse(*fake.push(number, status, at=at, description="快件已到达"))[0].event_id
        == event.event_id
    )
    status_code, answer, media_type = receiver.success()
    assert status_code == 200 and media_type == "application/json" and json.loads(answer)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_push_signed_with_another_secret_or_tampered_is_refused(adapter: str) -> None:
    fake = make(adapter)
    receiver = registry.receiver_for(adapter)
    headers, body = foreign_push(fake, "7700000000001", secret="wrong")
    with pytest.raises(SignatureError):
        receiver.verify(headers, body, [CREDENTIALS[adapter]])
    headers, body = foreign_push(fake, "7700000000001")
    tampered = body.replace(b"7700000000001", b"7700000000002")
    assert tampered != body
    with pytest.raises(SignatureError):
        receiver.verify(headers, tampered, [CREDENTIALS[adapter]])
    with pytest.raises(SignatureError):
        receiver.verify(headers, body, [])


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe garbage", b"not json at all", b"[]", b'{"unexpected": true}', b"data=%7B%7D&x=1"],
)
def test_garbage_in_a_push_is_a_payload_error(adapter: str, body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        registry.receiver_for(adapter).parse({}, body)
    assert str(caught.value)


def test_payload_errors_name_what_is_wrong() -> None:
    bad_time = {"billCode": "731", "action": "GOT", "actionTime": "yesterday"}
    with pytest.raises(PayloadError, match="actionTime 'yesterday'"):
        zto.receiver.parse({}, b"data=" + json.dumps(bad_time).encode())
    with pytest.raises(PayloadError, match="missing mailno"):
        sf.receiver.parse({}, b'{"Body":{"WaybillRoute":[{"id":"1","opCode":"50"}]}}')
    with pytest.raises(PayloadError, match="unknown cpCode 'DHL'"):
        cainiao.receiver.parse({}, b"logistics_interface=" + b'{"cpCode":"DHL","mailNo":"1"}')
    with pytest.raises(PayloadError, match="steps"):
        yunda.receiver.parse({}, b'{"mailno":"31","steps":[]}')
    with pytest.raises(PayloadError, match="category"):
        jdl.receiver.parse({}, b'{"waybillCode":"JD1","category":"x","operationTime":"2024-06-18 20:00:00"}')


def test_an_unverifiable_form_push_is_a_signature_error() -> None:
    for receiver in (zto.receiver, cainiao.receiver):
        for body in (b"\xff", b"no form here", b"a=1&a=2"):
            with pytest.raises(SignatureError):
                receiver.verify({}, body, [CREDENTIALS["ZTO"], CREDENTIALS["CAINIAO"]])


def test_jd_scans_before_the_pickup_are_left_out() -> None:
    body = b'{"waybillCode":"JDVE1","category":390,"state":"200034","operationTime":"2024-06-18 20:00:00"}'
    assert jdl.receiver.parse({}, body) == []


# --- registry ---------------------------------------------------------------------------------------------


def test_every_courier_has_an_adapter_and_a_receiver() -> None:
    assert set(registry.COURIERS) == {"ZTO", "YTO", "YUNDA", "STO", "JT", "SF", "JD", "EMS"}
    assert {c: registry.adapter_for(c) for c in ("STO", "JT", "EMS")} == dict.fromkeys(
        ("STO", "JT", "EMS"), "CAINIAO"
    )
    assert registry.adapter_for("YTO") == "YTO"
    assert registry.adapter_for("YTO", verified_only=True) == "CAINIAO"
    assert registry.adapter_for("ZTO", verified_only=True) == "ZTO"
    assert set(registry.ADAPTERS) == {"ZTO", "SF", "JD", "YUNDA", "YTO", "CAINIAO"}
    assert registry.receiver_for("JT") is cainiao.receiver
    assert registry.receiver_for("CAINIAO") is cainiao.receiver
    assert registry.receiver_for("SF") is sf.receiver
    with pytest.raises(KeyError):
        registry.adapter_for("DHL")


def test_api_for_builds_each_adapter_at_its_production_host_or_another() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    built = {name: registry.api_for(cred, client) for name, cred in CREDENTIALS.items()}
    assert {name: type(a) for name, a in built.items()} == {
        "ZTO": zto.ZtoApi,
        "SF": sf.SfApi,
        "JD": jdl.JdlApi,
        "YUNDA": yunda.YundaApi,
        "CAINIAO": cainiao.CainiaoApi,
        "YTO": yto.YtoApi,
    }
    assert [name for name, a in built.items() if not a.verified] == ["YTO"]
    sandbox = registry.api_for(
        CREDENTIALS["SF"], client, base_url="https://sfapi-sbox.sf-express.com/std/service"
    )
    assert isinstance(sandbox, sf.SfApi) and sandbox.base_url.startswith("https://sfapi-sbox")


def test_every_client_takes_one_constructor_and_defaults_to_its_own_production_host() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    hosts: dict[type[SignedClient], str] = {
        zto.ZtoApi: "https://japi.zto.com",
        sf.SfApi: "https://bspgw.sf-express.com/std/service",
        jdl.JdlApi: "https://api.jdl.com",
        yunda.YundaApi: "https://openapi.yundaex.com",
        yto.YtoApi: "https://openapi.yto.net.cn:11443/open",
        cainiao.CainiaoApi: "https://link.cainiao.com/gateway/link.do",
    }
    for kind, host in hosts.items():
        account = CREDENTIALS[kind.courier]
        assert kind(account, client, clock=lambda: T0).base_url == host
        other = kind(account, client, base_url="https://sandbox.example/api", clock=lambda: T0)
        assert (other.base_url, other.credential, other.client) == (
            "https://sandbox.example/api",
            account,
            client,
        )


def test_one_transport_serves_every_fake_by_host() -> None:
    fakes = CourierFakes(*(make(name) for name in ADAPTERS))
    client = fakes.client()
    numbers = {
        name: registry.api_for(cred, client).create_waybill(waybill_request())
        for name, cred in CREDENTIALS.items()
    }
    assert {name: [n.tracking_number] == stored(fakes[name]) for name, n in numbers.items()} == dict.fromkeys(
        ADAPTERS, True
    )
    assert numbers["CAINIAO"].tracking_number.startswith("77")  # an STO number through Cainiao
    assert numbers["CAINIAO"].print_data and json.loads(numbers["CAINIAO"].print_data)["templateURL"]
