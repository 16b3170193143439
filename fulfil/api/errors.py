"""Structured JSON errors and the request id.

Every error leaves the API as ``{"error": {"status": ..., "code": ..., "message": ...}}``. An unhandled
exception becomes a bare 500 that carries only the request id; the exception itself goes to the server log
under that id, so an operator can find the traceback a caller reports without the caller ever seeing it.
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import Message, Scope

logger = logging.getLogger("fulfil.api")

REQUEST_ID_HEADER = "X-Request-ID"
_STATE_KEY = "fulfil.request_id"
# A caller's id is echoed into headers and logs, so only short, plain tokens are trusted (UUIDs, trace ids).
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id(scope: Scope) -> str:
    """The request's id: the caller's ``X-Request-ID`` if well-formed, else a new one; fixed once chosen."""
    state: dict[str, Any] = scope.setdefault("state", {})
    rid = state.get(_STATE_KEY)
    if not isinstance(rid, str):
        sent = Headers.from_scope(scope).get(REQUEST_ID_HEADER.lower())
        rid = sent if sent is not None and _WELL_FORMED.fullmatch(sent) else uuid.uuid4().hex
        state[_STATE_KEY] = rid
    return rid


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: runs for every response, including those built by exception handlers."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id(scope)


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def error_code(status: int) -> str:
    """``not_found``, ``method_not_allowed``, ...: the status phrase in snake case."""
    phrase = _phrase(status)
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_") if phrase else "error"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message, **extra}
    return Response({"error": body}, status_code=status, headers=headers, media_type="application/json")


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if exc.status_code == HTTPStatus.INTERNAL_SERVER_ERROR:
        # Litestar raises 500s of its own (e.g. a response it cannot serialise): as opaque as any other crash.
        return internal_error_handler(request, exc)
    headers = dict(exc.headers or {})  # e.g. Allow on a 405
    if isinstance(exc, ValidationException) or (exc.status_code == 400 and exc.extra):
        details = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
        return error_response(exc.status_code, "validation_error", exc.detail, headers, details=details)
    return error_response(exc.status_code, error_code(exc.status_code), _message(request, exc), headers)


def _message(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    # Routing raises these with only the status phrase; say what was asked for instead.
    if exc.detail != _phrase(exc.status_code):
        return exc.detail
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return f"nothing at {request.url.path}"
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = (exc.headers or {}).get("allow", "")
        return f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
    return exc.detail


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    rid = request_id(request.scope)
    logger.error(
        "unhandled %s in %s %s [request_id=%s]",
        type(exc).__name__,
        request.method,
        request.url.path,
        rid,
        exc_info=exc,
        extra={"request_id": rid},
    )
    return error_response(500, "internal_error", "internal error", request_id=rid)
