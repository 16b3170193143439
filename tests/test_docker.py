"""The container files, checked by reading them (no Docker engine runs here).

Every command a container runs is resolved against the real ``fulfil`` command tree and parsed with its
real options, so a renamed command or option fails here rather than in a deployment.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from fulfil import settings
from fulfil.api.app import create_app
from fulfil.cli import _COMMAND_MODULES, main

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_SERVICES = {"migrate", "api", "worker"}
SECRETS = {"FULFIL_PII_KEY", "POSTGRES_PASSWORD"}


# ---- the command tree ---------------------------------------------------------------------------------


def resolve_fulfil_command(words: list[str]) -> click.Command:
    """Parse ``words`` exactly as the ``fulfil`` console script would, without running the command.

    Raises ``AssertionError`` naming the unknown command; click's own errors name a bad option or value.
    """
    assert words and words[0] == "fulfil", f"{words}: not a fulfil command"
    for module in _COMMAND_MODULES:  # what `fulfil.cli.run` imports before dispatching
        import_module(module)
    command: click.Command = main
    ctx = click.Context(main, info_name="fulfil")
    rest = list(words[1:])
    while isinstance(command, click.Group):
        assert rest, f"{shlex.join(words)}: names a group, not a command"
        name, rest = rest[0], rest[1:]
        sub = command.get_command(ctx, name)
        known = ", ".join(sorted(command.commands))
        assert sub is not None, f"{shlex.join(words)}: `{name}` is not a fulfil command (known: {known})"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    # Parses and converts every option and argument (unknown option, bad value, missing argument all raise)
    # and stops short of invoking the command.
    command.make_context(ctx.info_name, rest, parent=ctx.parent)
    return command


def test_the_resolver_rejects_what_the_cli_rejects() -> None:
    assert resolve_fulfil_command(["fulfil", "serve", "--port", "8000"]).name == "serve"
    with pytest.raises(AssertionError, match="not a fulfil command"):
        resolve_fulfil_command(["fulfil", "no-such-command"])
    with pytest.raises(click.NoSuchOption):
        resolve_fulfil_command(["fulfil", "serve", "--no-such-option"])
    with pytest.raises(click.BadParameter):
        resolve_fulfil_command(["fulfil", "serve", "--port", "eighty"])
    with pytest.raises(click.UsageError):
        resolve_fulfil_command(["fulfil", "migrate", "stray-argument"])


# ---- compose ------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation (``${X}``, ``${X:-default}``, ``${X:?error}``)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        present = env.get(name)
        if op and op.endswith("?"):
            if present is None or (op == ":?" and not present):
                raise KeyError(f"{name}: {arg}")
            return present
        if op and op.endswith("-") and (present is None or (op == ":-" and not present)):
            return arg
        return present or ""

    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose["services"]
    assert isinstance(svcs, dict)
    return svcs


def words_of(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def settings_variables() -> set[str]:
    """The environment variables ``fulfil.settings`` reads (``env.get("...")``), from its source."""
    tree = ast.parse(Path(settings.__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def test_compose_has_the_belts_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", *PROJECT_SERVICES} <= set(services)
    runs_project_image = {name for name, svc in services.items() if "build" in svc}
    assert runs_project_image == PROJECT_SERVICES
    images = {services[name]["image"] for name in PROJECT_SERVICES}
    assert len(images) == 1, f"project services run different images: {images}"
    for name in PROJECT_SERVICES:
        build = services[name]["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("service", sorted(PROJECT_SERVICES))
def test_compose_commands_are_real_fulfil_commands(services: dict[str, dict[str, Any]], service: str) -> None:
    command = services[service].get("command")
    assert command, f"{service}: no command (the image's default would run the API)"
    resolved = resolve_fulfil_command(words_of(command))
    assert resolved.name == service if service != "api" else resolved.name == "serve"


def test_api_listens_where_it_is_published(services: dict[str, dict[str, Any]]) -> None:
    words = words_of(services["api"]["command"])
    port = words[words.index("--port") + 1]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    published = [str(p) for p in services["api"]["ports"]]
    assert any(p.rsplit(":", 1)[-1] == port for p in published), published
    assert port in dockerfile_instructions("EXPOSE")[-1]


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def after(service: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[service]["depends_on"].items()}

    assert after("migrate")["postgres"] == "service_healthy"
    assert after("api")["migrate"] == "service_completed_successfully"
    assert after("api")["redis"] == "service_healthy"
    assert after("worker")["migrate"] == "service_completed_successfully"
    assert after("worker")["redis"] == "service_healthy"
    for dep in ("postgres", "redis"):
        assert services[dep]["healthcheck"]["test"], f"{dep}: service_healthy needs a healthcheck"
    assert services["migrate"].get("restart", "no") == "no"


def test_postgres_and_redis_keep_their_data(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert str(services["redis"]["image"]).split(":")[0] == "redis"
    assert str(services["redis"]["image"]).split(":")[1].split(".")[0] == "7"
    for name, mount in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        volumes = [str(v).split(":") for v in services[name]["volumes"]]
        assert [v[0] for v in volumes if v[1] == mount], f"{name}: nothing mounted on {mount}"
        assert all(v[0] in compose["volumes"] for v in volumes if v[1] == mount)


def test_redis_never_evicts_and_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    words = words_of(services["redis"]["command"])
    assert words[0] == "redis-server"
    options = dict(zip(words[1::2], words[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    replicas = str(worker["deploy"]["replicas"])
    assert int(interpolate(replicas, {})) >= 1
    assert worker["healthcheck"] == {"disable": True}  # the image's check probes the API port


def test_environment_is_the_documented_settings(compose: dict[str, Any], services: dict[str, Any]) -> None:
    readable = settings_variables()
    assert {"DATABASE_URL", "REDIS_URL", "FULFIL_PII_KEY"} <= readable
    for name in PROJECT_SERVICES:
        env = services[name]["environment"]
        assert isinstance(env, dict), f"{name}: environment as a mapping, please"
        assert set(env) <= readable, f"{name}: {set(env) - readable} is read by nothing in fulfil.settings"
        assert {"DATABASE_URL", "REDIS_URL", "FULFIL_PII_KEY"} <= set(env)
    # Every variable compose interpolates is a setting or listed in the file's header.
    text = COMPOSE_FILE.read_text()
    header = {m[1] for m in re.finditer(r"^#\s+([A-Z][A-Z0-9_]+)\s{2,}\S", text, re.M)}
    interpolated = {m["name"] for m in _VAR.finditer(text)}
    assert interpolated <= readable | header, f"undocumented: {interpolated - readable - header}"
    assert header <= interpolated, f"documented but unused: {header - interpolated}"


def test_no_secret_is_baked_in(services: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    for m in _VAR.finditer(text):
        if m["name"] in SECRETS:
            assert m["op"] == ":?", f"{m[0]}: a secret must be required, never defaulted"
    env = services["api"]["environment"]
    assert env["FULFIL_PII_KEY"].startswith("${FULFIL_PII_KEY")
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(env["DATABASE_URL"], {})
    with pytest.raises(KeyError, match="FULFIL_PII_KEY"):
        interpolate(env["FULFIL_PII_KEY"], {})


def test_the_environment_passes_settings_validation(services: dict[str, Any], tmp_path: Path) -> None:
    given = {"POSTGRES_PASSWORD": "pw", "FULFIL_PII_KEY": settings.new_key()}
    for name in PROJECT_SERVICES:
        env = {k: interpolate(str(v), given) for k, v in services[name]["environment"].items()}
        s = settings.load({**env, "FULFIL_DATA_DIR": str(tmp_path)})
        assert s.redis_url is not None and not s.embedded_database
        # The URLs point at the compose services and at the database and role postgres creates.
        pg_env = {k: interpolate(str(v), given) for k, v in services["postgres"]["environment"].items()}
        db_url = make_url(s.database_url)
        assert (db_url.host, db_url.username, db_url.password, db_url.database) == (
            "postgres",
            pg_env["POSTGRES_USER"],
            pg_env["POSTGRES_PASSWORD"],
            pg_env["POSTGRES_DB"],
        )
        assert s.redis_url.startswith("redis://redis:6379")


# ---- Dockerfile ---------------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [args for kw, args in self.instructions if kw == keyword]
        return found[-1] if found else None


def dockerfile_lines() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def dockerfile_instructions(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile_lines() if kw == keyword]


def stages() -> list[Stage]:
    args: dict[str, str] = {}
    result: list[Stage] = []
    for kw, rest in dockerfile_lines():
        if kw == "ARG" and not result and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        elif kw == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            image = interpolate(parts[0], args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            result.append(Stage(image, name))
        else:
            assert result or kw == "ARG", f"{kw} before the first FROM"
            if result:
                result[-1].instructions.append((kw, rest))
    return result


def exec_form(args: str) -> list[str]:
    words = json.loads(args)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), args
    return words


def test_dockerfile_is_multi_stage_on_a_slim_python() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    builder, final = all_stages[0], all_stages[-1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", final.image), final.image
    assert builder.image == final.image  # the virtualenv's interpreter must exist in the runtime stage
    names = {s.name for s in all_stages[:-1]}
    copied_from = [
        m[1] for kw, a in final.instructions if kw == "COPY" for m in [re.match(r"--from=(\S+)", a)] if m
    ]
    assert copied_from and set(copied_from) <= names
    assert not any(kw == "RUN" and "apt-get install" in a for kw, a in final.instructions), (
        "build tools belong in the builder stage"
    )


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    user = stages()[-1].last("USER")
    assert user is not None, "the final stage sets no USER, so it runs as root"
    name = user.split(":")[0]
    assert name not in {"root", "0"}
    final = stages()[-1].instructions
    # USER comes before what the container runs.
    assert [kw for kw, _ in final].index("USER") < [kw for kw, _ in final].index("CMD")


def test_dockerfile_installs_the_project_and_runs_the_api() -> None:
    builder = stages()[0]
    assert any(kw == "RUN" and "pip wheel" in a for kw, a in builder.instructions)
    final = stages()[-1]
    assert final.last("ENTRYPOINT") is None, (
        "compose commands start with `fulfil`; an ENTRYPOINT would prefix them"
    )
    cmd = exec_form(final.last("CMD") or "null")
    assert resolve_fulfil_command(cmd).name == "serve"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] in (final.last("EXPOSE") or "").split()


def test_copied_sources_exist_and_reach_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("!")
    ]

    def ignored(path: str) -> bool:
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            for p in {pattern.rstrip("/"), pattern.removeprefix("**/").rstrip("/")}:
                if any(fnmatch.fnmatchcase(c, p) for c in candidates):
                    return True
        return False

    sources = []
    for kw, args in dockerfile_lines():
        if kw == "COPY" and not args.startswith("--from"):
            sources += [w for w in args.split()[:-1] if not w.startswith("--")]
    assert {"pyproject.toml", "fulfil", "solvers", "integrations"} <= {s.rstrip("/") for s in sources}
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
    for private in (".git", ".venv", "docker/.env", ".env", "fulfil.db", "pii.key"):
        assert ignored(private), f"{private} would be sent to the Docker daemon"


def test_healthcheck_hits_a_route_of_the_app(tmp_path: Path) -> None:
    final = stages()[-1]
    check = final.last("HEALTHCHECK")
    assert check is not None
    url = re.search(r"http://[^'\" ]+", check)
    assert url, check
    parsed = httpx.URL(url[0])
    assert str(parsed.port) in (final.last("EXPOSE") or "").split()
    app = create_app(settings.load({"FULFIL_DATA_DIR": str(tmp_path)}))
    assert parsed.path in {route.path for route in app.routes}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_healthcheck_command_tells_up_from_down(tmp_path: Path) -> None:
    """The HEALTHCHECK's own command, run against a real `fulfil serve` (on a free port) and a closed one."""
    check = stages()[-1].last("HEALTHCHECK") or ""
    cmd = exec_form(check[check.index("CMD") + 3 :].strip())
    assert cmd[:2] == ["python", "-c"]
    port = _free_port()
    probe = [sys.executable, "-c", cmd[2].replace(":8000/", f":{port}/")]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0  # nothing listens yet
    env = {**os.environ, "FULFIL_DATA_DIR": str(tmp_path)}
    for k in ("DATABASE_URL", "REDIS_URL", "FULFIL_PII_KEY"):
        env.pop(k, None)
    fulfil = Path(sys.executable).with_name("fulfil")
    server = subprocess.Popen(
        [str(fulfil), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, "fulfil serve exited"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
