"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from fulfil.api.resources import Resources


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str  # "ready" or "not_ready"
    checks: dict[str, str]  # check name -> "ok" or "failed"
    reasons: dict[str, str] = {}  # failed check -> a short reason


class HealthController(Controller):
    tags = ("operations",)

    @get("/health", sync_to_thread=False, cache=False, summary="Liveness: the process answers")
    def health(self) -> Health:
        # Deliberately touches nothing: a database outage must not get healthy API processes restarted.
        return Health(status="ok")

    @get(
        "/ready",
        summary="Readiness: the database is reachable and migrated, Redis answers",
        responses={503: ResponseSpec(data_container=Readiness, description="a dependency is not ready")},
    )
    async def ready(self, resources: NamedDependency[Resources]) -> Response[Readiness]:
        results = await resources.readiness()
        checks = {name: "ok" if reason is None else "failed" for name, reason in results.items()}
        reasons = {name: reason for name, reason in results.items() if reason is not None}
        report = Readiness(status="not_ready" if reasons else "ready", checks=checks, reasons=reasons)
        return Response(report, status_code=503 if reasons else 200)
