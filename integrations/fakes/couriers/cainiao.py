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
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import FakeCourier, Push, gmt8_text

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
    return base64.b64encode(hashlib.md5(content + secret.encode()).digest()).decode()


def _refusal(code: str, message: str) -> httpx.Response:
    return httpx.Response(200, json={"success": "false", "errorCode": code, "errorMsg": message})


class CainiaoFake(FakeCourier):
    courier = "CAINIAO"
    host = "link.cainiao.com"

    def number_format(self, carrier: str, digits: str) -> str:
        prefix, count = next((p, n) for c, p, n in CARRIERS.values() if c == carrier)
        return prefix + digits[:count]

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        try:
            form = dict(
                parse_qsl(request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True)
            )
        except ValueError:
            return _refusal("S01", "非法的请求格式")
        if form.get("logistic_provider_id") != self.credential.app_key:
            return _refusal("S03", "非法的物流公司/仓储公司")
        content = form.get("logistics_interface", "")
        expected = _digest(content.encode(), self.credential.secret)
        if not hmac.compare_digest(form.get("data_digest", "").encode(), expected.encode()):
            self.refused_signatures += 1
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

    def push(
        self,
        tracking_number: str,
        status: TrackingStatus,
        *,
        at: dt.datetime | None = None,
        description: str = "",
        secret: str | None = None,
        carrier: str | None = None,
    ) -> Push:
        """A signed trace push; ``carrier`` (our code) for a number this fake did not issue."""
        waybill = self.waybill_of(tracking_number)
        courier = carrier or (waybill.carrier if waybill else "")
        if courier not in CP_CODES:
            raise ValueError(f"cainiao fake: no carrier known for {tracking_number!r}; pass carrier=")
        scan = {
            "cpCode": CP_CODES[courier],
            "mailNo": tracking_number,
            "action": ACTIONS[status],
            "time": gmt8_text(self.at(at)),
            "desc": description or ACTIONS[status],
        }
        content = json.dumps(scan, ensure_ascii=False, separators=(",", ":"))
        form = {
            "msg_type": "LOGISTICS_TRACE_PUSH",
            "logistic_provider_id": self.credential.app_key,
            "data_digest": _digest(
                content.encode(), secret if secret is not None else self.credential.secret
            ),
            "logistics_interface": content,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
        return headers, urlencode(form).encode("ascii")
