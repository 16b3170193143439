"""Platform apps and their credentials: registered sealed, rotated two at a time, read through a short cache.

A secret (and every ``extra`` value, e.g. Kuaishou's ``message_key`` or an access token) is stored only
inside one sealed blob (:meth:`fulfil.pii.Sealer.seal_bytes` of ``{"secret": ..., "extra": {...}}``); what is
shown anywhere is the key, the fingerprint (first 8 hex digits of SHA-256 of the secret) and the names of the
extras.

Rotation: registering a key again with a new secret adds a second active credential, so pushes signed with
either verify while the platform switches over; :func:`deactivate_app` retires the old one. A third active
secret for the same key is refused: three means an old one was forgotten.

Every webhook needs the active credentials of its platform, so :func:`active_credentials` keeps them in
process for :data:`CACHE_TTL` seconds; a registration or deactivation in this process clears the cache, one in
another process is seen within the TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from fulfil import settings as _settings
from fulfil.domain.models import Merchant, Platform, PlatformApp
from fulfil.pii import PiiError, Sealer
from integrations.base import AppCredential

log = logging.getLogger(__name__)

CACHE_TTL = 5.0  # seconds
MAX_ACTIVE = 2  # per platform and app key: the current secret and the one being rotated out
MAX_KEY_CHARS = 128
MAX_EXTRA_NAME_CHARS = 64
_BLOB = "platform app secret"


class CredentialError(ValueError):
    """A registration or deactivation that cannot be done; the message names what is wrong."""


class UnknownPlatform(CredentialError):
    pass


class UnknownMerchant(CredentialError):
    pass


class TooManySecrets(CredentialError):
    """A third active secret for one platform and key."""


class AppNotFound(CredentialError, LookupError):
    pass


@dataclass(frozen=True)
class AppInfo:
    """What may be shown about a registered app: never the secret nor an extra's value."""

    id: int
    platform: str
    app_key: str
    fingerprint: str
    active: bool
    merchant: str | None  # the merchant's code
    created_at: dt.datetime
    extra_keys: tuple[str, ...] | None  # None: the sealed blob does not open with this process's key

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "app_key": self.app_key,
            "fingerprint": self.fingerprint,
            "active": self.active,
            "merchant": self.merchant,
            "created_at": self.created_at.isoformat(),
            "extra_keys": list(self.extra_keys) if self.extra_keys is not None else None,
        }


def fingerprint(secret: str) -> str:
    """First 8 hex digits of SHA-256 of the secret: tells two secrets apart without revealing either."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_platform(name: str) -> Platform:
    try:
        return Platform(name)
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        raise UnknownPlatform(f"unknown platform {name!r}; platforms: {known}") from None


def _seal(sealer: Sealer, secret: str, extra: Mapping[str, str]) -> bytes:
    return sealer.seal_bytes(json.dumps({"secret": secret, "extra": dict(extra)}).encode())


def _open(sealer: Sealer, blob: bytes) -> tuple[str, dict[str, str]]:
    plain = json.loads(sealer.open_bytes(blob, _BLOB))
    return str(plain["secret"]), {str(k): str(v) for k, v in plain.get("extra", {}).items()}


def _check_text(what: str, value: str, limit: int | None = None) -> None:
    if not value:
        raise CredentialError(f"{what} is empty")
    if value != value.strip():
        # A pasted secret with a trailing newline would make every signature fail, far from the cause.
        raise CredentialError(f"{what} has spaces or a newline at its ends")
    if limit is not None and len(value) > limit:
        raise CredentialError(f"{what} is longer than {limit} characters")


def _check_extra(extra: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise CredentialError(f"extra {name!r}: names and values must be text")
        _check_text(f"extra name {name!r}", name, MAX_EXTRA_NAME_CHARS)
        _check_text(f"extra {name!r}", value)
        checked[name] = value
    return checked


def register_app(
    session: Session,
    sealer: Sealer,
    platform: str,
    app_key: str,
    app_secret: str,
    merchant_code: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> PlatformApp:
    """Register ``app_key`` of ``platform`` with ``app_secret``, sealed; flushed, so it has its id.

    The same key with a new secret adds a second active credential (rotation); the same key with the same
    secret again updates its merchant and extras and makes it active again.
    """
    plat = parse_platform(platform)
    _check_text("app key", app_key, MAX_KEY_CHARS)
    _check_text("app secret", app_secret)
    extras = _check_extra(extra or {})
    merchant_id: int | None = None
    if merchant_code is not None:
        merchant_id = session.scalar(select(Merchant.id).where(Merchant.code == merchant_code))
        if merchant_id is None:
            raise UnknownMerchant(f"unknown merchant {merchant_code!r}")
    fp = fingerprint(app_secret)
    _lock_app_key(session, plat, app_key)
    rows = list(
        session.scalars(
            select(PlatformApp)
            .where(PlatformApp.platform == plat, PlatformApp.app_key == app_key)
            .order_by(PlatformApp.id)
            .with_for_update()
        )
    )
    same = next((r for r in rows if r.secret_fingerprint == fp), None)
    if same is not None:
        try:
            stored_secret, _ = _open(sealer, same.secret_sealed)
        except PiiError as exc:
            raise CredentialError(f"{plat.value} app {app_key!r}, id {same.id}: {exc}") from None
        if stored_secret != app_secret:
            raise CredentialError(
                f"{plat.value} app {app_key!r}: the new secret's fingerprint {fp} equals that of app id "
                f"{same.id}, a different secret; choose another secret"
            )
    active = [r for r in rows if r.active and r is not same]
    if len(active) >= MAX_ACTIVE and (same is None or not same.active):
        prints = ", ".join(r.secret_fingerprint for r in active)
        raise TooManySecrets(
            f"{plat.value} app {app_key!r} already has {len(active)} active secrets (fingerprints {prints}); "
            f"deactivate one first (`fulfil apps deactivate ID`)"
        )
    if same is None:
        same = PlatformApp(
            platform=plat,
            app_key=app_key,
            secret_sealed=_seal(sealer, app_secret, extras),
            secret_fingerprint=fp,
            merchant_id=merchant_id,
            active=True,
        )
        session.add(same)
    else:
        same.secret_sealed = _seal(sealer, app_secret, extras)
        same.merchant_id = merchant_id
        same.active = True
    session.flush()
    log.info("platform app registered: %s key %r, fingerprint %s, id %d", plat.value, app_key, fp, same.id)
    invalidate_cache()
    return same


def _lock_app_key(session: Session, plat: Platform, app_key: str) -> None:
    """Serialise registrations of one app key, so the active-secret limit holds under concurrency.

    Locking the existing rows is not enough: two registrations both see the same rows, neither sees the
    other's new one, and both insert. PostgreSQL: a transaction advisory lock on the key, taken before the
    rows are read. SQLite: its write lock, taken before reading.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"fulfil.platform_app:{plat.value}:{app_key}"},
        )
    else:
        session.execute(text("UPDATE platform_apps SET id = id WHERE 0"))


def find_app(session: Session, platform: str, app_key: str, secret_fingerprint: str) -> PlatformApp:
    plat = parse_platform(platform)
    row = session.scalar(
        select(PlatformApp).where(
            PlatformApp.platform == plat,
            PlatformApp.app_key == app_key,
            PlatformApp.secret_fingerprint == secret_fingerprint,
        )
    )
    if row is None:
        raise AppNotFound(f"no {plat.value} app {app_key!r} with fingerprint {secret_fingerprint!r}")
    return row


def deactivate_app(session: Session, app_id: int) -> PlatformApp:
    """Retire one credential (kept, inactive: inbox rows still name its key). Idempotent."""
    row = session.get(PlatformApp, app_id, with_for_update=True)
    if row is None:
        raise AppNotFound(f"no platform app with id {app_id}")
    if row.active:
        row.active = False
        session.flush()
        log.info(
            "platform app deactivated: %s key %r, fingerprint %s, id %d",
            row.platform.value,
            row.app_key,
            row.secret_fingerprint,
            row.id,
        )
    invalidate_cache()
    return row


def list_apps(session: Session, sealer: Sealer | None = None) -> list[AppInfo]:
    """Every registered app, by platform, key and id. With ``sealer``, the names of each app's extras."""
    query = (
        select(PlatformApp, Merchant.code)
        .outerjoin(Merchant, Merchant.id == PlatformApp.merchant_id)
        .order_by(PlatformApp.platform, PlatformApp.app_key, PlatformApp.id)
    )
    return [_info(app, code, sealer) for app, code in session.execute(query)]


def app_info(session: Session, app: PlatformApp, sealer: Sealer | None = None) -> AppInfo:
    code = None
    if app.merchant_id is not None:
        code = session.scalar(select(Merchant.code).where(Merchant.id == app.merchant_id))
    return _info(app, code, sealer)


def _info(app: PlatformApp, merchant: str | None, sealer: Sealer | None) -> AppInfo:
    keys: tuple[str, ...] | None = None
    if sealer is not None:
        try:
            keys = tuple(sorted(_open(sealer, app.secret_sealed)[1]))
        except PiiError:
            keys = None
    return AppInfo(
        app.id,
        app.platform.value,
        app.app_key,
        app.secret_fingerprint,
        app.active,
        merchant,
        app.created_at,
        keys,
    )


# --- the cache webhooks read ------------------------------------------------------------------------------

_cache: dict[tuple[str, str], tuple[float, list[AppCredential]]] = {}
_cache_lock = threading.Lock()


def invalidate_cache() -> None:
    """Forget every cached credential of this process."""
    with _cache_lock:
        _cache.clear()


def _cache_key(engine: Engine, platform: str) -> tuple[str, str]:
    return (engine.url.render_as_string(hide_password=False), platform)


def cached_credentials(
    engine: Engine, platform: str, *, clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_TTL
) -> list[AppCredential] | None:
    """The cached active credentials of ``platform`` if still fresh, else None; never reads the database."""
    with _cache_lock:
        hit = _cache.get(_cache_key(engine, platform))
    if hit is not None and clock() - hit[0] < ttl:
        return hit[1]
    return None


def active_credentials(
    engine: Engine,
    platform: str,
    *,
    sealer: Sealer | None = None,
    clock: Callable[[], float] = time.monotonic,
    ttl: float = CACHE_TTL,
) -> list[AppCredential]:
    """The active credentials of ``platform``, opened with the key, newest first; cached for ``ttl`` s.

    A blob that does not open with this process's key is skipped with a warning naming the app (the push
    is then refused as unsigned, which is what an unknown secret amounts to).
    """
    hit = cached_credentials(engine, platform, clock=clock, ttl=ttl)
    if hit is not None:
        return hit
    now = clock()
    plat = parse_platform(platform)
    sealer = sealer or Sealer(_settings.get().pii_key)
    query = (
        select(PlatformApp.id, PlatformApp.app_key, PlatformApp.secret_sealed)
        .where(PlatformApp.platform == plat, PlatformApp.active.is_(True))
        .order_by(PlatformApp.id.desc())
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    creds: list[AppCredential] = []
    for app_id, app_key, blob in rows:
        try:
            secret, extra = _open(sealer, blob)
        except PiiError as exc:
            log.warning("platform app id %d (%s key %r) skipped: %s", app_id, plat.value, app_key, exc)
            continue
        creds.append(AppCredential(plat.value, app_key, secret, extra))
    with _cache_lock:
        _cache[_cache_key(engine, platform)] = (now, creds)
    return creds
