"""The faults every platform API shares, mapped once (integrations/http.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from integrations import http
from integrations.base import ApiError


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _raise(exc: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)  # type: ignore[call-arg]

    return handler


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (_raise(httpx.ReadTimeout), "timeout"),
        (_raise(httpx.ConnectError), "transport"),
        (lambda r: httpx.Response(429), "http_429"),
        (lambda r: httpx.Response(503), "http_503"),
    ],
)
def test_busy_or_unreachable_is_retryable(
    handler: Callable[[httpx.Request], httpx.Response], code: str
) -> None:
    client = _client(handler)
    with pytest.raises(ApiError) as caught:
        http.send(client, client.build_request("GET", "https://api.example/x"), "shop x")
    assert (caught.value.code, caught.value.retryable) == (code, True)
    assert str(caught.value).startswith("shop x: ")


def test_a_4xx_is_the_callers_to_read() -> None:
    client = _client(lambda r: httpx.Response(404, json={"error": "no such order"}))
    response = http.send(client, client.build_request("GET", "https://api.example/x"), "shop x")
    assert response.status_code == 404


def test_json_answers() -> None:
    assert http.json_answer(httpx.Response(200, json={"a": 1}), "w") == {"a": 1}
    assert http.json_answer(httpx.Response(200, json=[1]), "w", object_only=False) == [1]
    with pytest.raises(ApiError, match="w: the answer is not an object") as caught:
        http.json_answer(httpx.Response(200, json=[1]), "w")
    assert caught.value.retryable
    with pytest.raises(ApiError, match="w: HTTP 200 with a body that is not JSON"):
        http.json_answer(httpx.Response(200, content=b"<html>"), "w")
