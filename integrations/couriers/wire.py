"""What the courier adapters share on the wire: compact JSON, MD5 digests, form bodies, verification of a
push against several secrets, the "busy" test for error texts, the errors of a refusal and of an answer
missing its field, a booking of the window asked for, and reading pushed forms and scans by the courier's
field names.

Each courier module keeps its own signing formula; only the primitives live here, so a change to one courier's
scheme cannot reach another's.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from integrations.base import ApiError, PayloadError, SignatureError
from integrations.couriers.base import (
    CourierCredential,
    PickupBooking,
    PickupRequest,
    TrackingEvent,
    TrackingStatus,
)
from integrations.signing import equal, parse_gmt8


def compact(value: Any) -> str:
    """JSON as the couriers' samples send it: compact, Chinese left as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def md5_base64(data: bytes) -> str:
    """base64 of the raw 16-byte MD5 (not of its hex text: a common mistake in third-party code)."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def kg(grams: int) -> float:
    """Grams as kilograms to the gram, as couriers take weights."""
    return round(grams / 1000, 3)


def form_fields(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body, values decoded from UTF-8.

    ValueError when the body is not such a form or repeats a field (a repeated signed field would let a
    sender make us verify one value and read another).
    """
    text = body.decode("ascii")  # a form body is percent-encoded ASCII; anything else is not one
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise ValueError(f"field {name!r} appears twice")
        fields[name] = value
    return fields


def verify_any(
    credentials: Sequence[CourierCredential],
    given: str,
    digest: Callable[[CourierCredential], str],
    *,
    what: str,
    account: str | None = None,
) -> CourierCredential:
    """The first credential whose ``digest`` equals ``given`` (constant time); SignatureError if none.

    Every candidate is computed and compared, so timing does not tell which secret of a rotation matched.
    ``account``: the account the push names (app key, partner id), when it names one; only credentials of
    that account are candidates then.
    """
    if not given:
        raise SignatureError(f"{what}: missing signature")
    matched: CourierCredential | None = None
    for credential in credentials:
        if account is not None and credential.app_key != account:
            continue
        if equal(digest(credential), given) and matched is None:
            matched = credential
    if matched is None:
        named = f" of account {account}" if account is not None else ""
        raise SignatureError(f"{what}: signature does not match any active secret{named}")
    return matched


# Texts the couriers answer when they are overloaded or failing inside, rather than refusing the request.
_BUSY_WORDS = (
    "繁忙",
    "稍后",
    "超时",
    "系统异常",
    "服务暂不可用",
    "限流",
    "流量",
    "busy",
    "timeout",
    "try again",
)


def busy(text: str) -> bool:
    """Whether an error text says "try again later" (system busy, timed out, throttled)."""
    lowered = text.lower()
    return any(word in lowered for word in _BUSY_WORDS)


def refused(what: str, code: str, text: str, retryable_codes: Collection[str] = ()) -> ApiError:
    """A courier's refusal (its error code and text) as an ApiError carrying the code: retryable when the code
    is one of the courier's transient ones (``retryable_codes``) or the text says "try again later"."""
    return ApiError(
        f"{what}: {code} {text}".strip(), retryable=code in retryable_codes or busy(text), code=code or None
    )


def bad_response(what: str, missing: str) -> ApiError:
    """An accepted answer without what it must carry: not retryable, the same request would get the same."""
    return ApiError(f"{what}: answer has no {missing}", retryable=False, code="bad_response")


def required(answer: Mapping[str, Any], *names: str, what: str) -> str:
    """The first of ``names`` the answer gives a value for, as text; :func:`bad_response` naming the first
    when it gives none."""
    for name in names:
        value = answer.get(name)
        if value:
            return str(value)
    raise bad_response(what, names[0])


def optional(answer: Mapping[str, Any], name: str) -> str | None:
    """``name`` of the answer as text, None when it gives no value."""
    value = answer.get(name)
    return str(value) if value else None


def booked(request: PickupRequest, booking_ref: str) -> PickupBooking:
    """The booking of the window asked for, where the courier confirms no other."""
    return PickupBooking(
        booking_ref=booking_ref, window_start=request.window_start, window_end=request.window_end
    )


def push_form(body: bytes, what: str, error: type[Exception]) -> dict[str, str]:
    """The fields of a pushed form (:func:`form_fields`); ``error`` naming ``what`` when it is not one."""
    try:
        return form_fields(body)
    except ValueError as exc:
        raise error(f"{what}: not a form body ({exc})") from None


def signed_form(body: bytes, signed: str, what: str) -> tuple[dict[str, str], bytes]:
    """A pushed form and the bytes of its field ``signed``, the one its signature covers; SignatureError when
    the body is not a form or has no such field."""
    fields = push_form(body, what, SignatureError)
    if signed not in fields:
        raise SignatureError(f"{what}: no {signed} field")
    return fields, fields[signed].encode("utf-8")


def json_body(body: bytes, what: str) -> Any:
    """A push body (or form field) as JSON; PayloadError naming what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not UTF-8: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None


def text_field(item: Mapping[str, Any], name: str, where: str) -> str:
    """A required non-empty text (or number) field of a pushed scan; PayloadError if absent."""
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise PayloadError(f"{where}: missing {name}")
    return str(value)


def gmt8_time(item: Mapping[str, Any], name: str, where: str) -> dt.datetime:
    """A required ``yyyy-MM-dd HH:mm:ss`` Beijing-time field as naive UTC; PayloadError if absent or bad."""
    text = text_field(item, name, where)
    try:
        return parse_gmt8(text)
    except ValueError:
        raise PayloadError(f"{where}: {name} {text!r} is not yyyy-MM-dd HH:mm:ss") from None


def derived_event_id(*parts: str) -> str:
    """A dedupe key for a scan the courier gives no id for: the same scan redelivered gives the same key."""
    return "|".join(parts)


class ScanFields(NamedTuple):
    """A courier's names for the fields of a pushed scan: what happened, when (Beijing time), the text."""

    action: str
    time: str
    description: str


def scan_event(
    courier: str,
    number: str,
    scan: Mapping[str, Any],
    where: str,
    fields: ScanFields,
    statuses: Mapping[str, TrackingStatus],
    key: Sequence[str] = (),
) -> TrackingEvent:
    """One pushed scan of ``number`` read by the courier's ``fields``: the action's status by ``statuses``
    (anything else a movement), the time, the text. The dedupe key is ``key``, the number, the action and the
    time as sent; PayloadError naming a missing or bad field."""
    action = text_field(scan, fields.action, where)
    occurred = gmt8_time(scan, fields.time, where)
    return TrackingEvent(
        courier=courier,
        event_id=derived_event_id(*key, number, action, str(scan[fields.time])),
        tracking_number=number,
        status=statuses.get(action, TrackingStatus.IN_TRANSIT),
        occurred_at=occurred,
        description=str(scan.get(fields.description) or ""),
    )


def objects(value: Any, where: str) -> Iterable[Mapping[str, Any]]:
    """The items of a JSON list that must hold objects; PayloadError otherwise."""
    if not isinstance(value, list) or not value:
        raise PayloadError(f"{where} is not a non-empty list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise PayloadError(f"{where}[{index}] is not an object")
        yield item
