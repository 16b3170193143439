"""A fake Cainiao 菜鸟 link: ``TMS_WAYBILL_GET`` for other couriers' waybills, and signed trace pushes.

From ``../shared/docs/protocols.md``: a form of ``msg_type``, ``logistic_provider_id``,
``logistics_interface``, ``data_digest = base64(MD5_raw(logistics_interface + secret))``; SDKs [3P]: answers
``{success, errorCode, errorMsg, waybillCloudPrintResponseList[{objectId, waybillCode, printData}]}``, link
codes S02 bad signature, S03 unknown partner, S04 unknown message type, S07 system error. Waybills are keyed
by ``(cpCode, objectId)``: the same request id for the same carrier gets the same number. ``printData`` is a
deterministic stand-in for Cainiao's encrypted print data. Trace pushes are the adapter's assumption.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import (
    FakeCourier,
    Push,
    Scan,
    compact,
    form_of,
    form_push,
    gmt8_text,
    md5_base64,
)

# Our courier codes by cpCode, and each one's shape of a number (prefix, digits).
CARRIERS: Mapping[str, tuple[str, str, int]] = {
    "STO": ("STO", "77", 12),
    "JTSD": ("JT", "JT", 13),
    "EMS": ("EMS", "98", 11),
    "YTO": ("YTO", "YT", 13),
    "ZTO": ("ZTO", "73", 12),
    "YUNDA": ("YUNDA", "31", 13),
    "SF": ("SF", "SF", 13),
}
CP_CODES: Mapping[str, str] = {courier: cp for cp, (courier, _, _) in CARRIERS.items()}
ACTIONS: Mapping[TrackingStatus, str] = {
    TrackingStatus.PICKED_UP: "GOT",
    TrackingStatus.IN_TRANSIT: "DEPARTURE",
    TrackingStatus.DELIVERED: "SIGNED",
    TrackingStatus.EXCEPTION: "FAILED",
}


def _digest(content: bytes, secret: str) -> str:
    return md5_base64(content + secret.encode())


def _refusal(code: str, message: str) -> httpx.Response:
    return httpx.Response(200, json={"success": "false", "errorCode": code, "errorMsg": message})


class CainiaoFake(FakeCourier):
    courier = "CAINIAO"
    host = "link.cainiao.com"

    def number_format(self, carrier: str, digits: str) -> str:
        prefix, count = next((p, n) for c, p, n in CARRIERS.values() if c == carrier)
        return prefix + digits[:count]

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        form = form_of(request)
        if form is None:
            return _refusal("S01", "非法的请求格式")
        if form.get("logistic_provider_id") != self.credential.app_key:
            return _refusal("S03", "非法的物流公司/仓储公司")
        content = form.get("logistics_interface", "")
        expected = _digest(content.encode(), self.credential.secret)
        if not self.signature_ok(form.get("data_digest", ""), expected):
            return _refusal("S02", "非法的数字签名")
        if form.get("msg_type") != "TMS_WAYBILL_GET":
            return _refusal("S04", "非法的通知类型")
        try:
            body = json.loads(content)
        except ValueError:
            return _refusal("S01", "非法的JSON")
        cp_code = body.get("cpCode") if isinstance(body, dict) else None
        if cp_code not in CARRIERS:
            return _refusal("isv.cp-code-invalid", f"不支持的物流公司 {cp_code}")
        if refuse:
            return _refusal("isv.address-invalid", "收件人地址不正确")
        return self._issue(str(cp_code), body)

    def _issue(self, cp_code: str, body: dict[str, Any]) -> httpx.Response:
        carrier = CARRIERS[cp_code][0]
        if not (body.get("sender") or {}).get("address"):
            return _refusal("isv.sender-invalid", "发件人地址不能为空")
        printed = []
        for dto in body.get("tradeOrderInfoDtos") or []:
            object_id = str(dto.get("objectId") or "")
            if not object_id or not (dto.get("recipient") or {}).get("address"):
                return _refusal("isv.param-invalid", "objectId和收件人地址不能为空")
            waybill, _ = self.issue(f"{cp_code}:{object_id}", carrier, {"cpCode": cp_code, **dto})
            printed.append(
                {
                    "objectId": object_id,
                    "waybillCode": waybill.tracking_number,
                    "printData": self.print_data(waybill.tracking_number, str(dto.get("templateUrl") or "")),
                }
            )
        if not printed:
            return _refusal("isv.param-invalid", "tradeOrderInfoDtos不能为空")
        answer = {
            "success": "true",
            "errorCode": "",
            "errorMsg": "",
            "waybillCloudPrintResponseList": printed,
        }
        return httpx.Response(200, json=answer)

    def print_data(self, number: str, template_url: str) -> str:
        sealed = base64.b64encode(hashlib.sha256(f"{self.seed}:{number}".encode()).digest()).decode()
        data = {
            "encryptedData": sealed,
            "signature": sealed[:16],
            "templateURL": template_url,
            "ver": "fake_1",
        }
        return json.dumps(data, separators=(",", ":"))

    def busy(self, request: httpx.Request) -> httpx.Response:
        return _refusal("S07", "系统异常，请重试")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        """A trace push of the carrier of the waybill, or of the one ``push`` names for a number this fake
        did not issue."""
        if scan.carrier not in CP_CODES:
            raise ValueError(f"cainiao fake: no carrier known for {scan.tracking_number!r}; pass carrier=")
        content = compact(
            {
                "cpCode": CP_CODES[scan.carrier],
                "mailNo": scan.tracking_number,
                "action": ACTIONS[scan.status],
                "time": gmt8_text(scan.at),
                "desc": scan.description or ACTIONS[scan.status],
            }
        )
        form = {
            "msg_type": "LOGISTICS_TRACE_PUSH",
            "logistic_provider_id": self.credential.app_key,
            "data_digest": _digest(content.encode(), secret),
            "logistics_interface": content,
        }
        return form_push(form)
