"""What each courier adapter puts on the wire: where our request id goes, weights, the pickup window in the
courier's own format and zone, and pushes built by hand (digests written out here with hashlib, not taken
from the adapters).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

import httpx
import pytest

from integrations.base import ApiError, SignatureError
from integrations.couriers import cainiao, jdl, registry, sf, yunda, zto
from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers import CainiaoFake, FakeCourier, JdlFake
from tests.couriers_support import CREDENTIALS, T0, api, make, pickup_request, waybill_request


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode("ascii"), keep_blank_values=True))


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def last(fake: FakeCourier) -> httpx.Request:
    return fake.calls[-1]


# --- SF -----------------------------------------------------------------------------------------------------


def test_sf_waybill_request() -> None:
    fake = make("SF")
    waybill = api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert (request.method, request.url.host, request.url.path) == (
        "POST",
        "bspgw.sf-express.com",
        "/std/service",
    )
    fields = form(request)
    assert fields["partnerID"] == "SFPARTNER1" and fields["serviceCode"] == "EXP_RECE_CREATE_ORDER"
    assert fields["requestID"] == "wb-20240618-0001" and fields["timestamp"] == "1718712000000"
    signed = quote_plus(fields["msgData"] + fields["timestamp"] + "fc34c561a34f").encode()
    assert fields["msgDigest"] == b64md5(signed)
    msg = json.loads(fields["msgData"])
    assert msg["orderId"] == "wb-20240618-0001"
    assert [c["contactType"] for c in msg["contactInfoList"]] == [1, 2]
    assert msg["contactInfoList"][1]["county"] == "天河区"
    assert (msg["totalWeight"], msg["parcelQty"], msg["isDocall"], msg["monthlyCard"]) == (
        0.65,
        1,
        0,
        "7551234567",
    )
    assert msg["cargoDetails"] == [
        {"name": "针织开衫 黑 M", "count": 1, "weight": 0.42},
        {"name": "围巾", "count": 1, "weight": 0.18},
    ]
    assert waybill.tracking_number.startswith("SF") and len(waybill.tracking_number) == 15


def test_sf_pickup_is_a_docall_order_with_its_start_in_beijing_time() -> None:
    fake = make("SF")
    booking = api(fake).book_pickup(pickup_request())
    msg = json.loads(form(last(fake))["msgData"])
    assert (msg["isDocall"], msg["sendStartTm"], msg["parcelQty"], msg["totalWeight"]) == (
        1,
        "2024-06-19 09:00:00",
        120,
        78.0,
    )
    assert [c["contactType"] for c in msg["contactInfoList"]] == [1]
    assert (booking.window_start, booking.window_end) == (
        dt.datetime(2024, 6, 19, 1),
        dt.datetime(2024, 6, 19, 3),
    )
    assert fake.pickups["pk-20240619-site7"].window_start == dt.datetime(2024, 6, 19, 1)


def test_sf_retry_after_a_lost_answer_reads_the_first_order() -> None:
    fake = make("SF")
    client = api(fake)
    fake.fail_next("lost_answer")
    with pytest.raises(ApiError):
        client.create_waybill(waybill_request())
    number = client.create_waybill(waybill_request()).tracking_number
    services = [form(r)["serviceCode"] for r in fake.calls]
    assert services == ["EXP_RECE_CREATE_ORDER", "EXP_RECE_CREATE_ORDER", "EXP_RECE_SEARCH_ORDER_RESP"]
    assert number == fake.waybills["wb-20240618-0001"].tracking_number


def test_sf_route_push_built_by_hand() -> None:
    body = json.dumps(
        {
            "Body": {
                "WaybillRoute": [
                    {
                        "id": "R1",
                        "mailno": "SF1",
                        "acceptTime": "2024-06-19 10:30:05",
                        "opCode": "50",
                        "remark": "已收件",
                    },
                    {"id": "R2", "mailno": "SF1", "acceptTime": "2024-06-20 18:02:00", "opCode": "8000"},
                    {"id": "R3", "mailno": "SF1", "acceptTime": "2024-06-20 08:00:00", "opCode": "31"},
                ]
            }
        },
        ensure_ascii=False,
    ).encode()
    headers = {"partnerID": "SFPARTNER1", "timestamp": "1718712000000"}
    headers["msgDigest"] = b64md5(quote_plus(body.decode() + "1718712000000" + "fc34c561a34f").encode())
    assert sf.receiver.verify(headers, body, [CREDENTIALS["SF"]]) == CREDENTIALS["SF"]
    events = sf.receiver.parse(headers, body)
    assert [(e.event_id, e.status, e.occurred_at) for e in events] == [
        ("R1", TrackingStatus.PICKED_UP, dt.datetime(2024, 6, 19, 2, 30, 5)),
        ("R2", TrackingStatus.DELIVERED, dt.datetime(2024, 6, 20, 10, 2)),
        ("R3", TrackingStatus.IN_TRANSIT, dt.datetime(2024, 6, 20, 0, 0)),
    ]
    with pytest.raises(SignatureError, match="account OTHER"):
        sf.receiver.verify({**headers, "partnerID": "OTHER"}, body, [CREDENTIALS["SF"]])


# --- ZTO ----------------------------------------------------------------------------------------------------


def test_zto_waybill_request() -> None:
    fake = make("ZTO")
    waybill = api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert (request.url.host, request.url.path) == ("japi.zto.com", "/zto.open.createOrder")
    assert request.headers["x-appKey"] == "zto-app-1"
    assert request.headers["x-dataDigest"] == b64md5(request.content + b"zto-secret-77")
    assert "x-timestamp" not in request.headers
    order = json.loads(request.content)
    assert (order["partnerOrderCode"], order["orderType"]) == ("wb-20240618-0001", "1")
    assert order["receiveInfo"]["receiverDistrict"] == "天河区"
    assert [i["weight"] for i in order["orderItems"]] == [420, 180]  # grams
    assert waybill.courier_order_ref == fake.waybills["wb-20240618-0001"].order_ref


def test_zto_with_the_timestamp_prefix() -> None:
    fake = make("ZTO")
    client = zto.ZtoApi(CREDENTIALS["ZTO"], fake.client(), clock=lambda: T0, sign_timestamp=True)
    client.create_waybill(waybill_request())
    request = last(fake)
    assert request.headers["x-timestamp"] == "1718712000000"
    assert request.headers["x-dataDigest"] == b64md5(b"1718712000000" + request.content + b"zto-secret-77")
    assert len(fake.waybills) == 1


def test_zto_pickup_window_in_summary_info_in_beijing_time() -> None:
    fake = make("ZTO")
    booking = api(fake).book_pickup(pickup_request())
    order = json.loads(last(fake).content)
    assert order["orderType"] == "2" and order["partnerOrderCode"] == "pk-20240619-site7"
    assert order["summaryInfo"] == {
        "quantity": 120,
        "startTime": "2024-06-19 09:00:00",
        "endTime": "2024-06-19 11:00:00",
    }
    assert booking.booking_ref == fake.pickups["pk-20240619-site7"].booking_ref


def test_zto_trace_push_built_by_hand() -> None:
    data = json.dumps(
        {
            "billCode": "73100196611386",
            "action": "DISPATCH",
            "actionTime": "2024-06-19 10:30:05",
            "desc": "正在派件",
        },
        ensure_ascii=False,
    )
    body = urlencode(
        {
            "data": data,
            "data_digest": b64md5((data + "zto-secret-77").encode()),
            "company_id": "zto-app-1",
            "msg_type": "Traces",
        }
    ).encode()
    assert zto.receiver.verify({}, body, [CREDENTIALS["ZTO"]]) == CREDENTIALS["ZTO"]
    (event,) = zto.receiver.parse({}, body)
    assert (event.tracking_number, event.status, event.occurred_at) == (
        "73100196611386",
        TrackingStatus.IN_TRANSIT,
        dt.datetime(2024, 6, 19, 2, 30, 5),
    )


# --- JD Logistics -------------------------------------------------------------------------------------------


def test_jdl_waybill_request() -> None:
    fake = make("JD")
    waybill = api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert (request.url.host, request.url.path) == ("api.jdl.com", "/ecap/v1/orders/create")
    query = dict(request.url.params)
    assert {k: v for k, v in query.items() if k != "sign"} == {
        "LOP-DN": "ECAP",
        "access_token": "tok-1",
        "app_key": "jd-key",
        "timestamp": "2024-06-18 20:00:00",  # Beijing time, as lop-tz says
        "v": "2.0",
        "algorithm": "md5-salt",
    }
    assert request.headers["lop-tz"] == "8"
    pattern = (
        b"jd-secretaccess_tokentok-1app_keyjd-keymethod/ecap/v1/orders/createparam_json"
        + request.content
        + b"timestamp2024-06-18 20:00:00v2.0jd-secret"
    )
    assert query["sign"] == hashlib.md5(pattern).hexdigest().upper()
    (order,) = json.loads(request.content)  # a JSON array of one request
    assert (order["orderId"], order["pickupType"], order["customerCode"]) == (
        "wb-20240618-0001",
        1,
        "010K1234",
    )
    assert order["cargoes"][0]["weight"] == 0.65
    assert waybill.tracking_number.startswith("JDVE")
    assert waybill.courier_order_ref is not None and waybill.courier_order_ref.startswith("EO")


def test_jdl_pickup_takes_the_offered_slice_inside_the_window_in_ms() -> None:
    fake = make("JD")
    booking = api(fake).book_pickup(pickup_request())
    assert [r.url.path for r in fake.calls] == ["/ecap/v1/orders/precheck", "/ecap/v1/orders/create"]
    (order,) = json.loads(last(fake).content)
    # 09:00-10:00 in Changshu on the 19th is 01:00-02:00 UTC: 1718758800000-1718762400000 ms
    assert (order["pickupStartTime"], order["pickupEndTime"], order["pickupType"]) == (
        1718758800000,
        1718762400000,
        1,
    )
    assert (booking.window_start, booking.window_end) == (
        dt.datetime(2024, 6, 19, 1),
        dt.datetime(2024, 6, 19, 2),
    )
    assert order["cargoes"][0]["quantity"] == 120


def test_jdl_pickup_reports_the_slice_it_got_when_none_fits_inside() -> None:
    fake = make("JD")
    request = replace(
        pickup_request(),
        window_start=dt.datetime(2024, 6, 19, 1, 30),
        window_end=dt.datetime(2024, 6, 19, 2, 30),
    )
    booking = api(fake).book_pickup(request)
    assert (booking.window_start, booking.window_end) == (
        dt.datetime(2024, 6, 19, 1),
        dt.datetime(2024, 6, 19, 2),
    )


def test_jdl_pickup_outside_every_slice_is_refused_before_creating() -> None:
    fake = make("JD")
    late = replace(
        pickup_request(), window_start=dt.datetime(2024, 6, 18, 15), window_end=dt.datetime(2024, 6, 18, 16)
    )
    with pytest.raises(ApiError) as caught:
        api(fake).book_pickup(late)  # 23:00-24:00 in Changshu: JD collects until 22:00
    assert (caught.value.code, caught.value.retryable) == ("no_pickup_slice", False)
    assert [r.url.path for r in fake.calls] == ["/ecap/v1/orders/precheck"] and fake.pickups == {}


def test_jdl_slices_and_choice() -> None:
    raw = [
        {
            "dateKey": "2024-06-19",
            "pickupSliceTimes": [
                {"startTime": "10:00:00", "endTime": "11:00:00"},
                {"startTime": "09:00:00", "endTime": "10:00:00"},
            ],
        }
    ]
    offered = jdl.slices(raw)
    assert offered == [
        (dt.datetime(2024, 6, 19, 1), dt.datetime(2024, 6, 19, 2)),
        (dt.datetime(2024, 6, 19, 2), dt.datetime(2024, 6, 19, 3)),
    ]
    assert (
        jdl.choose_slice(offered, dt.datetime(2024, 6, 19, 1, 30), dt.datetime(2024, 6, 19, 3)) == offered[1]
    )
    assert jdl.choose_slice(offered, dt.datetime(2024, 6, 19, 5), dt.datetime(2024, 6, 19, 6)) is None
    with pytest.raises(ApiError, match="unreadable pickupSliceTimes"):
        jdl.slices([{"dateKey": "19 June"}])


def test_jdl_repeated_order_id_answers_the_first_waybill() -> None:
    fake = make("JD")
    assert isinstance(fake, JdlFake)
    first = api(fake).create_waybill(waybill_request())
    again = api(fake).create_waybill(waybill_request())
    assert first == again
    assert json.loads(fake.handler(fake.calls[-1]).content)["subCode"] == "0_0001"


def test_jdl_trace_push_built_by_hand() -> None:
    body = json.dumps(
        {
            "waybillCode": "JDVE00132473532",
            "orderId": "wb-1",
            "operationTime": "2024-06-19 10:30:05",
            "category": 510,
            "state": "10034",
            "operationRemark": "妥投",
        },
        ensure_ascii=False,
    ).encode()
    timestamp = "2024-06-19 10:31:00"
    pattern = b"jd-secretaccess_tokenapp_keyjd-keymethod/ecap/v1/orders/trace/pushparam_json" + body
    pattern += f"timestamp{timestamp}v2.0jd-secret".encode()
    headers = {"app_key": "jd-key", "timestamp": timestamp, "sign": hashlib.md5(pattern).hexdigest().upper()}
    assert jdl.receiver.verify(headers, body, [CREDENTIALS["JD"]]) == CREDENTIALS["JD"]
    (event,) = jdl.receiver.parse(headers, body)
    assert (event.status, event.occurred_at, event.description) == (
        TrackingStatus.DELIVERED,
        dt.datetime(2024, 6, 19, 2, 30, 5),
        "妥投",
    )


# --- Yunda --------------------------------------------------------------------------------------------------


def test_yunda_waybill_request() -> None:
    fake = make("YUNDA")
    api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert (request.url.host, request.url.path) == (
        "openapi.yundaex.com",
        "/openapi-api/v1/accountOrder/createBmOrder",
    )
    assert (request.headers["app-key"], request.headers["req-time"]) == ("100001", "1718712000000")
    assert request.headers["sign"] == hashlib.md5(request.content + b"_yd-secret-9").hexdigest()
    params = json.loads(request.content)
    assert (params["appid"], params["partner_id"], params["secret"]) == ("100001", "529951202001", "bm-pass")
    (order,) = params["orders"]
    assert (order["order_serial_no"], order["khddh"], order["weight"]) == ("wb-20240618-0001", "P1001", 0.65)
    assert order["receiver"]["county"] == "天河区"


def test_yunda_pickup_order_times_in_beijing_time() -> None:
    fake = make("YUNDA")
    api(fake).book_pickup(pickup_request())
    request = last(fake)
    assert request.url.path == "/openapi-api/v1/order/pushOrder"
    params = json.loads(request.content)
    assert (params["orderid"], params["sendstarttime"], params["sendendtime"]) == (
        "pk-20240619-site7",
        "2024-06-19 09:00:00",
        "2024-06-19 11:00:00",
    )
    assert params["items"] == [{"name": "服装", "number": 120}] and params["weight"] == 78.0


def test_yunda_trace_push_built_by_hand() -> None:
    body = json.dumps(
        {
            "mailno": "312345",
            "steps": [
                {"time": "2024-06-19 10:30:05", "action": "GOT"},
                {"time": "2024-06-20 09:00:00", "action": "SIGNED"},
            ],
        }
    ).encode()
    headers = {
        "app-key": "100001",
        "req-time": "1718712000000",
        "sign": hashlib.md5(body + b"_yd-secret-9").hexdigest(),
    }
    assert yunda.receiver.verify(headers, body, [CREDENTIALS["YUNDA"]]) == CREDENTIALS["YUNDA"]
    assert [(e.status, e.occurred_at) for e in yunda.receiver.parse(headers, body)] == [
        (TrackingStatus.PICKED_UP, dt.datetime(2024, 6, 19, 2, 30, 5)),
        (TrackingStatus.DELIVERED, dt.datetime(2024, 6, 20, 1, 0)),
    ]


# --- Cainiao ------------------------------------------------------------------------------------------------


def test_cainiao_waybill_request() -> None:
    fake = make("CAINIAO")
    waybill = api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert (request.url.host, request.url.path) == ("link.cainiao.com", "/gateway/link.do")
    fields = form(request)
    assert (fields["msg_type"], fields["logistic_provider_id"]) == ("TMS_WAYBILL_GET", "cn-token-1")
    assert fields["data_digest"] == b64md5((fields["logistics_interface"] + "cn-secret").encode())
    body = json.loads(fields["logistics_interface"])
    assert body["cpCode"] == "STO"
    (dto,) = body["tradeOrderInfoDtos"]
    assert (dto["objectId"], dto["userId"], dto["templateUrl"]) == (
        "wb-20240618-0001",
        "2200001",
        "https://t.example/101",
    )
    assert (
        dto["orderInfo"]["tradeOrderList"] == ["P1001"]
        and dto["recipient"]["address"]["district"] == "天河区"
    )
    assert isinstance(fake, CainiaoFake)
    assert waybill.print_data == fake.print_data(waybill.tracking_number, "https://t.example/101")


@pytest.mark.parametrize(
    "carrier, cp_code, prefix",
    [("JT", "JTSD", "JT"), ("EMS", "EMS", "98"), ("YTO", "YTO", "YT"), ("STO", "STO", "77")],
)
def test_cainiao_issues_the_named_carriers_waybill(carrier: str, cp_code: str, prefix: str) -> None:
    fake = make("CAINIAO")
    request = replace(waybill_request(), carrier=carrier)
    waybill = api(fake).create_waybill(request)
    assert json.loads(form(last(fake))["logistics_interface"])["cpCode"] == cp_code
    assert waybill.tracking_number.startswith(prefix)
    assert isinstance(fake, CainiaoFake)
    (event,) = cainiao.receiver.parse(*fake.push(waybill.tracking_number, TrackingStatus.PICKED_UP))
    assert event.courier == carrier


def test_cainiao_needs_a_carrier() -> None:
    fake = make("CAINIAO")
    request = replace(waybill_request(), carrier="")
    with pytest.raises(ApiError) as caught:
        api(fake).create_waybill(request)
    assert (caught.value.code, caught.value.retryable) == ("unknown_carrier", False) and not fake.calls
    with_default = type(CREDENTIALS["CAINIAO"])("CAINIAO", "cn-token-1", "cn-secret", {"cp_code": "EMS"})
    assert (
        registry.api_for(with_default, fake.client()).create_waybill(request).tracking_number.startswith("98")
    )


def test_cainiao_trace_push_built_by_hand() -> None:
    content = json.dumps(
        {"cpCode": "JTSD", "mailNo": "JT0001", "action": "TMS_RETURN", "time": "2024-06-19 10:30:05"}
    )
    body = urlencode(
        {
            "msg_type": "X",
            "logistic_provider_id": "p",
            "data_digest": b64md5((content + "cn-secret").encode()),
            "logistics_interface": content,
        }
    ).encode()
    assert (
        cainiao.receiver.verify({}, body, [CREDENTIALS["ZTO"], CREDENTIALS["CAINIAO"]])
        == CREDENTIALS["CAINIAO"]
    )
    (event,) = cainiao.receiver.parse({}, body)
    assert (event.courier, event.status, event.occurred_at) == (
        "JT",
        TrackingStatus.EXCEPTION,
        dt.datetime(2024, 6, 19, 2, 30, 5),
    )


# --- YTO (unverified) ---------------------------------------------------------------------------------------


def test_yto_request_follows_the_assumed_scheme() -> None:
    fake = make("YTO")
    api(fake).create_waybill(waybill_request())
    request = last(fake)
    assert request.url.path == "/open/privacy_create_adapter/v1/yto-app/K21000119"
    envelope: dict[str, Any] = json.loads(request.content)
    assert envelope["format"] == "JSON" and envelope["timestamp"] == "1718712000000"
    assert envelope["sign"] == b64md5(envelope["param"].encode() + b"privacy_create_adapterv1yto-secret")
    assert json.loads(envelope["param"])["logisticsNo"] == "wb-20240618-0001"
