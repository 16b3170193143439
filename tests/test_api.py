"""The API skeleton: liveness, readiness, OpenAPI, JSON errors, request ids and `fulfil serve`."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar, get
from litestar.exceptions import InternalServerException
from litestar.params import FromQuery
from litestar.testing import TestClient

import fulfil
from fulfil import db, redis_conn, settings
from fulfil.api.app import create_app
from fulfil.cli import main, serve
from tests.conftest import Backend

SECRET = "s3cret-pw"
FULFIL = Path(sys.executable).with_name("fulfil")


def free_port() -> int:
    """A port nothing listens on (bound and released: the kernel will not hand it out again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def client(backend: Backend) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(backend.settings)) as c:
        yield c


def ready(s: settings.Settings, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    with TestClient(create_app(s, probe_timeout=timeout)) as c:
        r = c.get("/ready")
    assert SECRET not in r.text
    assert "Traceback" not in r.text
    return r.status_code, r.json()


# ---- liveness and readiness ---------------------------------------------------------------------------


def test_health_is_ok_and_carries_a_request_id(client: TestClient[Litestar]) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_building_the_app_and_liveness_open_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a connection was opened")

    monkeypatch.setattr(db, "engine", refuse)
    monkeypatch.setattr(redis_conn, "connect", refuse)
    app = create_app(settings.load({"FULFIL_DATA_DIR": str(tmp_path)}))
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"}
    assert app.debug is False


def test_ready_when_database_is_migrated_and_redis_answers(backend: Backend) -> None:
    status, body = ready(backend.settings)
    assert (status, body) == (200, {"status": "ready", "checks": {"database": "ok", "redis": "ok"}})


def _unreachable_database_url(backend: Backend, tmp_path: Path) -> str:
    if backend.name == "postgresql":
        return f"postgresql+psycopg://root:{SECRET}@127.0.0.1:{free_port()}/test"
    return f"sqlite:///{tmp_path / 'no-such-dir' / 'fulfil.db'}"


def test_ready_names_an_unreachable_database(backend: Backend, tmp_path: Path) -> None:
    s = dataclasses.replace(backend.settings, database_url=_unreachable_database_url(backend, tmp_path))
    status, body = ready(s)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"] == {"database": "failed", "redis": "ok"}
    reason = body["reasons"]["database"]
    assert "Error" in reason and len(reason) <= 200
    assert "\n" not in reason


def test_ready_names_a_database_that_is_not_migrated(backend: Backend, tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    urls = [empty]
    if backend.name == "postgresql":
        # The backend's server, but a schema nothing was ever migrated into.
        urls.append(
            backend.settings.database_url.split("?")[0] + "?options=" + quote("-csearch_path=t_empty")
        )
    for url in urls:
        status, body = ready(dataclasses.replace(backend.settings, database_url=url))
        assert status == 503, url
        assert body["checks"] == {"database": "failed", "redis": "ok"}
        assert body["reasons"]["database"].startswith("schema at revision none, expected ")
        assert "fulfil migrate" in body["reasons"]["database"]


def test_ready_names_an_unreachable_redis(backend: Backend) -> None:
    s = dataclasses.replace(backend.settings, redis_url=f"redis://:{SECRET}@127.0.0.1:{free_port()}/0")
    status, body = ready(s)
    assert status == 503
    assert body["checks"] == {"database": "ok", "redis": "failed"}
    assert "ConnectionError" in body["reasons"]["redis"]


def test_ready_answers_within_its_deadline_when_redis_hangs(backend: Backend) -> None:
    # A socket that completes the TCP handshake (kernel backlog) but never answers: PING waits for ever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        app = create_app(dataclasses.replace(backend.settings, redis_url=url), probe_timeout=0.5)
        with TestClient(app) as c:
            started = time.monotonic()
            first = c.get("/ready")
            elapsed = time.monotonic() - started
            second = c.get("/ready")  # the first check is still stuck in its thread
            assert first.status_code == second.status_code == 503
            assert first.json()["reasons"] == {"redis": "no answer within 0.5s"}
            assert first.json()["checks"]["database"] == "ok"
            assert elapsed < 3.0
            assert second.json()["reasons"] == {"redis": "an earlier check has not answered within 0.5s"}


# ---- OpenAPI ------------------------------------------------------------------------------------------


def test_openapi_document_lists_the_probes(client: TestClient[Litestar]) -> None:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["info"] == {"title": "fulfil", "version": fulfil.__version__}
    assert {"/health", "/ready"} <= set(doc["paths"])
    assert "503" in doc["paths"]["/ready"]["get"]["responses"]


# ---- errors -------------------------------------------------------------------------------------------


def test_unknown_path_is_a_json_404(client: TestClient[Litestar]) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": {"status": 404, "code": "not_found", "message": "nothing at /no/such/thing"}}
    assert r.headers["x-request-id"]


def test_wrong_method_is_a_json_405_with_allow(client: TestClient[Litestar]) -> None:
    r = client.delete("/health")
    assert r.status_code == 405
    error = r.json()["error"]
    assert (error["status"], error["code"]) == (405, "method_not_allowed")
    assert "DELETE" in error["message"] and "/health" in error["message"]
    assert "GET" in r.headers["allow"]


def test_validation_error_is_400_with_details(backend: Backend) -> None:
    @get("/test-only/items", sync_to_thread=False)
    def items(limit: FromQuery[int]) -> dict[str, int]:
        return {"limit": limit}

    app = create_app(backend.settings)
    app.register(items)
    with TestClient(app) as c:
        assert c.get("/test-only/items", params={"limit": "7"}).json() == {"limit": 7}
        r = c.get("/test-only/items", params={"limit": "seven"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["status"], error["code"]) == (400, "validation_error")
    assert error["message"]
    assert [d["key"] for d in error["details"]] == ["limit"]
    assert error["details"][0]["source"] == "query"


@pytest.mark.parametrize(
    "exc",
    [RuntimeError(f"password={SECRET}"), InternalServerException(f"password={SECRET}")],
    ids=["unhandled", "internal-server-exception"],
)
def test_a_crash_is_an_opaque_500_logged_under_the_request_id(
    backend: Backend, caplog: pytest.LogCaptureFixture, exc: Exception
) -> None:
    @get("/test-only/boom", sync_to_thread=False)
    def boom() -> None:
        raise exc

    app = create_app(backend.settings)
    app.register(boom)
    with caplog.at_level(logging.ERROR, logger="fulfil.api"), TestClient(app) as c:
        r = c.get("/test-only/boom", headers={"X-Request-ID": "trace-42"})
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "status": 500,
            "code": "internal_error",
            "message": "internal error",
            "request_id": "trace-42",
        }
    }
    assert r.headers["x-request-id"] == "trace-42"
    assert SECRET not in r.text and "Traceback" not in r.text and "boom" not in r.text
    [record] = [rec for rec in caplog.records if rec.name == "fulfil.api"]
    assert "trace-42" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is exc


def test_request_id_is_reused_only_when_well_formed(client: TestClient[Litestar]) -> None:
    assert client.get("/health", headers={"X-Request-ID": "a1b2-c3.d4:e5_f6"}).headers["x-request-id"] == (
        "a1b2-c3.d4:e5_f6"
    )
    for bad in ["has space", "x" * 200, "<script>", ""]:
        rid = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), bad
    first, second = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_debug_stays_off_whatever_the_environment(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITESTAR_DEBUG", "1")
    assert create_app(backend.settings).debug is False


# ---- fulfil serve -------------------------------------------------------------------------------------


def test_serve_options() -> None:
    assert serve.serve_cmd.name in main.commands  # registered on import
    runner = CliRunner()
    out = runner.invoke(main, ["serve", "--help"])
    assert out.exit_code == 0, out.output
    for option in ("--host", "--port", "--workers"):
        assert option in out.output
    assert runner.invoke(main, ["serve", "--port", "0"]).exit_code == 2
    assert runner.invoke(main, ["serve", "--workers", "0"]).exit_code == 2


def test_serve_refuses_a_bad_setting_before_listening(tmp_path: Path) -> None:
    env = {**os.environ, "FULFIL_DATA_DIR": str(tmp_path), "DATABASE_URL": "mysql://x@db/fulfil"}
    port = free_port()
    done = subprocess.run(
        [str(FULFIL), "serve", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_serve_answers_over_http(backend: Backend) -> None:
    env = {**os.environ, **backend.env}
    if backend.name == "sqlite":
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    port = free_port()
    proc = subprocess.Popen(
        [str(FULFIL), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fulfil serve did not start listening within 60 s"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]
        r = httpx.get(f"{base}/ready", timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    # Stopping the server left the backend it shared (an embedded Redis included) running.
    assert backend.redis.ping()
