"""The app factory. Building the app reads settings and opens no connection."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

import fulfil
from fulfil import settings as _settings
from fulfil.api import apps, errors
from fulfil.api.dispatch import LabelController, TrackingController
from fulfil.api.explanations import ExplanationController
from fulfil.api.health import HealthController
from fulfil.api.resources import Resources
from fulfil.api.webhooks import WebhookController, build_intake
from fulfil.intake.receivers import Intake
from fulfil.settings import Settings


def create_app(
    settings: Settings | None = None, *, probe_timeout: float = 2.0, stop_embedded_redis: bool = False
) -> Litestar:
    """Build the API for ``settings`` (default: the process's settings, validated here).

    ``probe_timeout`` bounds each readiness check, in seconds. ``stop_embedded_redis``: the process ends
    with the app (``fulfil serve``), so shutdown also stops an embedded Redis server nobody else uses.
    """
    resources = Resources(
        settings or _settings.get(), probe_timeout=probe_timeout, stop_embedded_redis=stop_embedded_redis
    )

    intake = build_intake(resources)  # opens nothing until the first push

    def provide_resources() -> Resources:
        return resources

    def provide_intake() -> Intake:
        return intake

    return Litestar(
        route_handlers=[
            HealthController,
            WebhookController,
            apps.router(resources),
            ExplanationController,
            TrackingController,
            LabelController,
        ],
        dependencies={
            "resources": Provide(provide_resources, sync_to_thread=False),
            "intake": Provide(provide_intake, sync_to_thread=False),
        },
        exception_handlers={
            HTTPException: errors.http_exception_handler,
            Exception: errors.internal_error_handler,
        },
        before_send=[errors.add_request_id_header],
        on_shutdown=[intake.close, resources.close],
        openapi_config=OpenAPIConfig(title="fulfil", version=fulfil.__version__, path="/schema"),
        # Logging belongs to the process (``fulfil serve`` configures it), not to the app.
        logging_config=None,
        debug=False,
        pdb_on_exception=False,
    )
