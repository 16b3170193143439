"""Webhook receivers: raw bytes in, the platform's own success contract out (logic in
:mod:`fulfil.intake.receivers`).

Handlers are async: verifying and parsing are short CPU work, and storing waits on the group commit's
writer thread without holding a worker thread per request. litestar reads the body first, refusing one over
1 MB with 413 from its Content-Length before reading it, or as soon as more bytes than that arrive.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import RawBody

from fulfil.api import errors
from fulfil.api.resources import Resources
from fulfil.intake.receivers import MAX_BODY_BYTES, RETRY_AFTER_SECONDS, Intake, Kind, Outcome
from fulfil.pii import Sealer


def build_intake(resources: Resources) -> Intake:
    """The receivers of one app, over its lazily opened engine and Redis client."""
    return Intake(resources.engine, resources.redis, Sealer(resources.settings.pii_key))


def _answer(outcome: Outcome) -> Response[Any]:
    if outcome.answer is not None:
        a = outcome.answer
        return Response(a.body, status_code=a.status, media_type=a.media_type)
    if outcome.kind is Kind.REJECTED:
        return errors.error_response(401, "bad_signature", outcome.message)
    if outcome.kind is Kind.NOT_FOUND:
        return errors.error_response(404, "not_found", outcome.message)
    return errors.error_response(
        503, "service_unavailable", outcome.message, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def _receive(
    platform: str, request: Request[Any, Any, Any], body: bytes, intake: Intake
) -> Response[Any]:
    # Header names arrive lower-cased; adapters look them up case-insensitively anyway.
    return _answer(await intake.receive(platform, dict(request.headers.items()), body))


_RESPONSES = {
    401: ResponseSpec(None, description="the signature does not verify: nothing stored"),
    413: ResponseSpec(None, description="the body is over 1 MB"),
    503: ResponseSpec(None, description="the database is unavailable: nothing acknowledged, retry"),
}


class WebhookController(Controller):
    path = "/webhooks"
    tags = ("intake",)
    request_max_body_size = MAX_BODY_BYTES

    @post(
        "/doudian",
        status_code=200,
        responses=_RESPONSES,
        summary="Douyin shop message push (event-sign = md5(app_key + body + secret))",
    )
    async def doudian(
        self, request: Request[Any, Any, Any], body: RawBody, intake: NamedDependency[Intake]
    ) -> Response[Any]:
        return await _receive("doudian", request, body, intake)

    @post(
        "/kuaishou",
        status_code=200,
        responses=_RESPONSES,
        summary="Kuaishou message push (AES-CBC ciphertext, appKey checked), heartbeat included",
    )
    async def kuaishou(
        self, request: Request[Any, Any, Any], body: RawBody, intake: NamedDependency[Intake]
    ) -> Response[Any]:
        return await _receive("kuaishou", request, body, intake)

    @post(
        "/shopify",
        status_code=200,
        responses=_RESPONSES,
        summary="Shopify webhook (X-Shopify-Hmac-SHA256)",
    )
    async def shopify(
        self, request: Request[Any, Any, Any], body: RawBody, intake: NamedDependency[Intake]
    ) -> Response[Any]:
        return await _receive("shopify", request, body, intake)

    @post(
        "/woocommerce",
        status_code=200,
        responses=_RESPONSES,
        summary="WooCommerce webhook (X-WC-Webhook-Signature), and its unsigned ping",
    )
    async def woocommerce(
        self, request: Request[Any, Any, Any], body: RawBody, intake: NamedDependency[Intake]
    ) -> Response[Any]:
        return await _receive("woocommerce", request, body, intake)
