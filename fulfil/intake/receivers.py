"""Webhook receivers: verify over the raw bytes, store durably once, and only then say the platform's yes.

The HTTP layer (:mod:`fulfil.api.webhooks`) hands :meth:`Intake.receive` the platform, the headers and the
raw body, and turns the :class:`Outcome` into a response. What happens in between, in order:

1. WooCommerce's unsigned ping when a webhook is saved (``webhook_id=N``): answered, nothing stored.
2. The push is verified by the platform's adapter against the active credentials (cached, two during a
   rotation). A bad signature is refused (401), writes nothing, is counted in Redis
   (``fulfil:intake:rejected:<platform>``, best effort) and logged without secrets or body.
3. The adapter parses the push. A correctly signed push that cannot be parsed is kept whole with its reason
   and an exception item, then acknowledged, so nothing is lost and the platform stops retrying.
4. The messages are stored by the process's group commit (:mod:`fulfil.intake.groupcommit`): the pushes
   that arrive together share one transaction (one multi-row insert, their outbox jobs), which commits
   before the platform's success contract is returned; a duplicate delivery gets the same answer and writes
   nothing.

A database that cannot be reached is a 503: the platform retries later and nothing was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import import_module

import anyio.to_thread
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fulfil import db
from fulfil.domain.models import Platform
from fulfil.intake import credentials, inbox
from fulfil.intake.groupcommit import GroupCommit
from fulfil.pii import Sealer
from integrations.base import AppCredential, HttpAnswer, PayloadError, PushAdapter, PushEvent, SignatureError

log = logging.getLogger(__name__)

PUSH_PLATFORMS: tuple[str, ...] = ("doudian", "kuaishou", "shopify", "woocommerce")
MAX_BODY_BYTES = 1024 * 1024  # a bigger push is refused (413) before it is read
REJECTED_KEY_PREFIX = "fulfil:intake:rejected:"
REDIS_BACKOFF = 10.0  # seconds without counting attempts after Redis failed: a reject must stay cheap
RETRY_AFTER_SECONDS = 5
_REASON_LOG_CHARS = 200


class Kind(StrEnum):
    STORED = "stored"  # at least one new message stored
    DUPLICATE = "duplicate"  # every message was already in the inbox: nothing written
    HEARTBEAT = "heartbeat"  # a platform's test message: acknowledged, nothing stored
    PING = "ping"  # WooCommerce's unsigned ping when a webhook is saved
    UNPARSEABLE = "unparseable"  # signed but not understood: kept whole with its reason, acknowledged
    REJECTED = "rejected"  # not from the platform (bad signature, unknown app): nothing written
    UNAVAILABLE = "unavailable"  # the database (or the platform's adapter) is away: retry later
    NOT_FOUND = "not_found"  # no receiver for this platform


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    answer: HttpAnswer | None  # the platform's success contract; None when the push was not acknowledged
    message: str = ""  # for a refusal: what to tell the caller (never a secret, never the adapter's detail)
    new_ids: tuple[int, ...] = ()
    duplicates: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.answer is not None


def rejected_key(platform: str) -> str:
    return REJECTED_KEY_PREFIX + platform


def rejected_counts(conn: redis.Redis) -> dict[str, int]:
    """Refused pushes per platform since the counters were last reset."""
    names = [p.value for p in Platform]
    values = conn.mget([rejected_key(n) for n in names])
    return {n: int(v) for n, v in zip(names, values, strict=True) if v is not None}


class RejectionCounter:
    """Counts refused pushes in Redis, best effort: a refusal must never wait on (or fail with) Redis.

    Counts that cannot be written are kept and added on the next success; after a failure Redis is not
    tried again for :data:`REDIS_BACKOFF` seconds, so a flood of forged pushes during a Redis outage costs
    nothing but a dictionary update each.
    """

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        clock: Callable[[], float] = time.monotonic,
        backoff: float = REDIS_BACKOFF,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._backoff = backoff
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._retry_at = 0.0

    def add(self, platform: str) -> None:
        with self._lock:
            self._pending[platform] = self._pending.get(platform, 0) + 1
            if self._clock() < self._retry_at:
                return
            batch, self._pending = self._pending, {}
        try:
            pipe = self._connect().pipeline(transaction=False)
            for name, n in batch.items():
                pipe.incrby(rejected_key(name), n)
            pipe.execute()
        except Exception as exc:  # best effort by design: Redis may be away, the refusal stands anyway
            with self._lock:
                for name, n in batch.items():
                    self._pending[name] = self._pending.get(name, 0) + n
                self._retry_at = self._clock() + self._backoff
            log.warning(
                "intake: rejected-push counter not written (%s); retrying in %gs",
                type(exc).__name__,
                self._backoff,
            )

    @property
    def pending(self) -> dict[str, int]:
        with self._lock:
            return dict(self._pending)


def load_push_adapter(platform: str) -> PushAdapter:
    """The module-level ``push`` adapter of ``integrations.<platform>``."""
    module = import_module(f"integrations.{platform}")
    adapter: PushAdapter = module.push
    return adapter


def _scrub(text: str, creds: Sequence[AppCredential]) -> str:
    """``text`` with every secret and extra value of ``creds`` masked: adapters' messages are not trusted."""
    for c in creds:
        for value in (c.secret, *c.extra.values()):
            if len(value) >= 4:
                text = text.replace(value, "***")
    return text


def _fault(exc: BaseException, creds: Sequence[AppCredential]) -> str:
    """An adapter's unexpected exception with its traceback, for the log, secrets masked."""
    return _scrub("".join(traceback.format_exception(exc)).rstrip(), creds)


def _clip(text: str, limit: int = _REASON_LOG_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Intake:
    """The receivers of one API process: adapters, cached credentials, a session factory, the counter."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        connect_redis: Callable[[], redis.Redis],
        sealer: Sealer,
        *,
        adapters: Mapping[str, PushAdapter] | None = None,
        credentials_ttl: float = credentials.CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._adapters: dict[str, PushAdapter] = dict(adapters or {})
        self._ttl = credentials_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: sessionmaker[Session] | None = None
        self.rejections = RejectionCounter(connect_redis, clock)
        self.writer = GroupCommit(engine, connect_redis)

    def close(self) -> None:
        """Write the pushes still queued and stop the writer thread (at shutdown)."""
        self.writer.close()

    # --- collaborators, made on first use --------------------------------------------------------------

    def adapter(self, platform: str) -> PushAdapter:
        with self._lock:
            found = self._adapters.get(platform)
        if found is None:
            found = load_push_adapter(platform)
            with self._lock:
                self._adapters[platform] = found
        return found

    def _session(self) -> Session:
        with self._lock:
            if self._sessions is None:
                self._sessions = sessionmaker(self._engine(), expire_on_commit=False)
            return self._sessions()

    def credentials(self, platform: str) -> list[AppCredential]:
        return credentials.active_credentials(
            self._engine(), platform, sealer=self._sealer, clock=self._clock, ttl=self._ttl
        )

    # --- one push -----------------------------------------------------------------------------------------

    async def receive(self, platform: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Verify, store and commit one push; the outcome says what to answer.

        Runs on the event loop: verifying and parsing are CPU work of a fraction of a millisecond per message,
        the store waits on the group commit's future, and what would block (a credentials read when the cache
        is stale, keeping an unparseable push) runs in a worker thread.
        """
        if platform not in PUSH_PLATFORMS:
            return Outcome(Kind.NOT_FOUND, None, f"no webhook receiver for platform {platform!r}")
        try:
            adapter = self.adapter(platform)
        except Exception as exc:
            log.error("webhook %s: no push adapter (%s: %s)", platform, type(exc).__name__, exc)
            return Outcome(Kind.UNAVAILABLE, None, f"{platform} receiver is not available; retry later")

        if self._is_ping(adapter, headers, body):
            log.info("webhook %s: ping answered", platform)
            return Outcome(Kind.PING, adapter.success())

        try:
            creds = credentials.cached_credentials(self._engine(), platform, clock=self._clock, ttl=self._ttl)
            if creds is None:
                creds = await anyio.to_thread.run_sync(self.credentials, platform)
        except Exception as exc:
            return self._failed(platform, "reading credentials", exc)
        try:
            credential = adapter.verify(headers, body, creds)
        except SignatureError as exc:
            return self._reject(platform, _scrub(str(exc), creds), body, len(creds))
        except Exception as exc:  # an adapter fault on forged input is still a refusal, never a 5xx
            log.error("webhook %s: verify failed unexpectedly\n%s", platform, _fault(exc, creds))
            return self._reject(platform, f"verify raised {type(exc).__name__}", body, len(creds))

        try:
            messages = adapter.parse(headers, body, credential)
        except PayloadError as exc:
            mid = getattr(exc, "message_id", None)
            reason = _scrub(str(exc), [credential])
            return await self._keep_whole(
                adapter, platform, credential, body, reason, mid if isinstance(mid, str) else None
            )
        except Exception as exc:
            log.error("webhook %s: parse failed unexpectedly\n%s", platform, _fault(exc, [credential]))
            reason = _scrub(
                f"the {platform} adapter failed to parse it: {type(exc).__name__}: {exc}", [credential]
            )
            return await self._keep_whole(adapter, platform, credential, body, reason, None)

        if all(m.event == PushEvent.HEARTBEAT for m in messages):
            log.debug("webhook %s: heartbeat answered", platform)
            return Outcome(Kind.HEARTBEAT, adapter.success())

        try:
            result = await asyncio.wrap_future(self.writer.submit(platform, credential.app_key, messages))
        except Exception as exc:
            if db.unavailable(exc):
                return self._failed(platform, "storing a push", exc)
            # Signed and parsed, yet the inbox refused what the adapter made of it: keep it whole instead.
            log.error("webhook %s: storing a parsed push failed\n%s", platform, _fault(exc, [credential]))
            reason = _scrub(f"parsed but could not be stored: {type(exc).__name__}: {exc}", [credential])
            return await self._keep_whole(adapter, platform, credential, body, reason, None)
        if result.exception_ids:
            log.warning(
                "webhook %s: %d message(s) kept as exceptions (inbox %s)",
                platform,
                len(result.exception_ids),
                ", ".join(map(str, result.exception_ids[:10])),
            )
        kind = Kind.STORED if result.new_ids or result.exception_ids else Kind.DUPLICATE
        log.debug(
            "webhook %s: %d new, %d duplicate(s), app %r",
            platform,
            len(result.new_ids),
            result.duplicates,
            credential.app_key,
        )
        return Outcome(kind, adapter.success(), new_ids=tuple(result.new_ids), duplicates=result.duplicates)

    def _is_ping(self, adapter: PushAdapter, headers: Mapping[str, str], body: bytes) -> bool:
        is_ping = getattr(adapter, "is_ping", None)
        if not callable(is_ping):
            return False
        try:
            return bool(is_ping(headers, body))
        except Exception as exc:
            log.error("webhook %s: is_ping failed unexpectedly\n%s", adapter.platform, _fault(exc, []))
            return False

    def _reject(self, platform: str, reason: str, body: bytes, n_credentials: int) -> Outcome:
        self.rejections.add(platform)
        # The adapter's reason goes to the log only: echoing it (an expected digest, say) would help forgers.
        log.warning(
            "webhook %s: push rejected: %s (%d bytes, %d active credential(s))",
            platform,
            _clip(reason),
            len(body),
            n_credentials,
        )
        return Outcome(Kind.REJECTED, None, f"{platform} push rejected: the signature does not verify")

    async def _keep_whole(
        self,
        adapter: PushAdapter,
        platform: str,
        credential: AppCredential,
        body: bytes,
        reason: str,
        message_id: str | None,
    ) -> Outcome:
        def keep() -> int | None:
            with self._session() as session, session.begin():
                return inbox.store_unparseable(
                    session, platform, credential.app_key, body, reason, message_id
                )

        try:
            inbox_id = await anyio.to_thread.run_sync(keep)
        except Exception as exc:
            return self._failed(platform, "keeping an unparseable push", exc)
        if inbox_id is None:
            log.info("webhook %s: unparseable push delivered again; already kept", platform)
            return Outcome(Kind.DUPLICATE, adapter.success(), duplicates=1)
        log.warning("webhook %s: unparseable push kept as inbox %d: %s", platform, inbox_id, _clip(reason))
        return Outcome(Kind.UNPARSEABLE, adapter.success(), new_ids=())

    def _failed(self, platform: str, doing: str, exc: Exception) -> Outcome:
        if db.unavailable(exc):
            log.warning(
                "webhook %s: database unavailable while %s (%s); answered 503",
                platform,
                doing,
                type(exc).__name__,
            )
            return Outcome(Kind.UNAVAILABLE, None, "the database is unavailable; retry later")
        raise exc
