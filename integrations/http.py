"""Sending a platform API request: the faults every platform shares, mapped to :class:`ApiError` once.

Timeouts, transport failures, HTTP 429 and 5xx are retryable (the platform, or the way to it, is busy or
down); what a 4xx or an error inside a 200 means is each platform's own business, so the caller reads those.
"""

from __future__ import annotations

from typing import Any

import httpx

from integrations.base import ApiError


def send(client: httpx.Client, request: httpx.Request, what: str) -> httpx.Response:
    """Send ``request``; a retryable :class:`ApiError` named ``what`` for a timeout, a transport fault,
    429 or 5xx."""
    try:
        response = client.send(request)
    except httpx.TimeoutException:
        raise ApiError(f"{what}: timed out", retryable=True, code="timeout") from None
    except httpx.TransportError as exc:
        raise ApiError(f"{what}: {type(exc).__name__}", retryable=True, code="transport") from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise ApiError(f"{what}: HTTP {status}", retryable=True, code=f"http_{status}")
    return response


def json_answer(response: httpx.Response, what: str, *, object_only: bool = True) -> Any:
    """The JSON body of ``response`` (a JSON object unless ``object_only`` is False); a garbled answer is a
    retryable :class:`ApiError`, since a proxy or an overloaded gateway is the usual cause."""
    try:
        answer = response.json()
    except ValueError:
        raise ApiError(
            f"{what}: HTTP {response.status_code} with a body that is not JSON",
            retryable=True,
            code="bad_response",
        ) from None
    if object_only and not isinstance(answer, dict):
        raise ApiError(f"{what}: the answer is not an object", retryable=True, code="bad_response")
    return answer
