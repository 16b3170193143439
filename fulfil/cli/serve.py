"""``fulfil serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import click

from fulfil import settings
from fulfil.cli import console, main

if TYPE_CHECKING:
    from litestar import Litestar

APP_FACTORY = "fulfil.cli.serve:app_factory"


def app_factory() -> Litestar:
    """What uvicorn calls in each worker process: the API, owning this process's connections."""
    from fulfil.api.app import create_app

    return create_app(stop_embedded_redis=True)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the ``fulfil`` loggers (where the API logs unhandled errors by request id).

    Passed to uvicorn rather than applied here so that every worker process configures itself the same way.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["fulfil"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="One log line per request; off by default, since at webhook rates it costs more than the request.",
)
def serve_cmd(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the HTTP API (health, readiness, OpenAPI schema at /schema)."""
    import uvicorn

    s = settings.get()  # a bad setting stops us here, naming the variable, before any socket is bound
    console.print(
        f"serving fulfil API on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})"
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(s.log_level),
        log_level=s.log_level.lower(),
        server_header=False,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
