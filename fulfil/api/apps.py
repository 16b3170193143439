"""The admin API of platform apps: register, list, deactivate. Never answers with a secret.

Guarded by ``Authorization: Bearer <FULFIL_ADMIN_TOKEN>`` (compared in constant time); without that setting
the admin API is off and says so (503).
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

import msgspec
from litestar import Controller, Router, delete, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.types import Guard
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.api.resources import Resources
from fulfil.db import sessionmaker_for
from fulfil.intake import credentials
from fulfil.intake.credentials import AppInfo, AppNotFound, CredentialError, TooManySecrets
from fulfil.pii import Sealer

DISABLED = "admin API disabled: set FULFIL_ADMIN_TOKEN"


class AppIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    platform: str
    app_key: str
    app_secret: str
    merchant: str | None = None  # the merchant's code
    extra: dict[str, str] = {}  # e.g. Kuaishou's message_key: sealed with the secret

    def __repr__(self) -> str:  # a request body in a log line shows no secret
        return f"AppIn(platform={self.platform!r}, app_key={self.app_key!r}, app_secret=<hidden>)"


class AppOut(msgspec.Struct, frozen=True):
    id: int
    platform: str
    app_key: str
    fingerprint: str
    active: bool
    merchant: str | None
    created_at: dt.datetime
    extra_keys: list[str] | None


class AppList(msgspec.Struct, frozen=True):
    apps: list[AppOut]


def _out(info: AppInfo) -> AppOut:
    return AppOut(
        info.id,
        info.platform,
        info.app_key,
        info.fingerprint,
        info.active,
        info.merchant,
        info.created_at,
        list(info.extra_keys) if info.extra_keys is not None else None,
    )


def admin_guard(token: str | None) -> Guard:
    """A guard admitting ``Authorization: Bearer <token>`` only; with no token configured, a 503."""
    expected = token.encode() if token else None

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        if expected is None:
            raise HTTPException(status_code=503, detail=DISABLED)
        scheme, _, given = connection.headers.get("authorization", "").partition(" ")
        # compare_digest over bytes: constant time in the token's content whatever the caller sends.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise NotAuthorizedException(
                "admin API: send Authorization: Bearer <FULFIL_ADMIN_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


def _session(resources: Resources) -> Session:
    return sessionmaker_for(resources.engine())()


def _unavailable() -> HTTPException:
    return HTTPException(status_code=503, detail="the database is unavailable; retry later")


class AppsController(Controller):
    path = "/apps"
    tags = ("admin",)

    @post(
        "/",
        sync_to_thread=True,
        status_code=201,
        summary="Register a platform app (a second secret for the same key: rotation)",
        responses={409: ResponseSpec(None, description="the key already has two active secrets")},
    )
    def register(self, data: JSONBody[AppIn], resources: NamedDependency[Resources]) -> AppOut:
        sealer = Sealer(resources.settings.pii_key)
        try:
            with _session(resources) as session, session.begin():
                app = credentials.register_app(
                    session, sealer, data.platform, data.app_key, data.app_secret, data.merchant, data.extra
                )
                info = credentials.app_info(session, app, sealer)
        except TooManySecrets as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except CredentialError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except Exception as exc:
            if db.unavailable(exc):
                raise _unavailable() from None
            raise
        return _out(info)

    @get("/", sync_to_thread=True, summary="Registered platform apps (keys and fingerprints, never secrets)")
    def list_apps(self, resources: NamedDependency[Resources]) -> AppList:
        try:
            with _session(resources) as session:
                infos = credentials.list_apps(session, Sealer(resources.settings.pii_key))
        except Exception as exc:
            if db.unavailable(exc):
                raise _unavailable() from None
            raise
        return AppList([_out(i) for i in infos])

    @delete("/{app_id:int}", sync_to_thread=True, status_code=200, summary="Deactivate a platform app")
    def deactivate(self, app_id: FromPath[int], resources: NamedDependency[Resources]) -> AppOut:
        try:
            with _session(resources) as session, session.begin():
                app = credentials.deactivate_app(session, app_id)
                info = credentials.app_info(session, app, Sealer(resources.settings.pii_key))
        except AppNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except Exception as exc:
            if db.unavailable(exc):
                raise _unavailable() from None
            raise
        return _out(info)


def router(resources: Resources) -> Router:
    """The admin routes, behind the bearer-token guard of ``resources``' settings."""
    return Router(
        path="/", route_handlers=[AppsController], guards=[admin_guard(resources.settings.admin_token)]
    )
