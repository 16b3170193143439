"""What every courier's signed client holds and does alike: the account, the injected ``httpx.Client``, the
host and the clock, and sending a request for the courier's JSON answer.

How a request is signed, where it goes under the host and what an answer means stay in each courier's module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from integrations import http
from integrations.couriers.base import CourierCredential


class SignedClient:
    """The base of the ``*Api`` classes: a subclass names its courier, ``verified`` and production host."""

    courier: str  # our adapter code
    verified: bool  # False: the signing scheme is not confirmed by the courier's own documents
    default_base_url: str  # the production host, used when ``base_url`` is None

    def __init__(
        self,
        credential: CourierCredential,
        client: httpx.Client,
        *,
        base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.client = client
        self.base_url = self.default_base_url if base_url is None else base_url
        self.clock = clock

    def url(self, path: str) -> str:
        """``path`` (``/`` and on) under the base URL, a trailing ``/`` of the base dropped."""
        return f"{self.base_url.rstrip('/')}{path}"

    def exchange(self, request: httpx.Request, what: str) -> Any:
        """The courier's JSON answer, an object; ApiError named ``what`` for a timeout, a transport fault,
        429, 5xx or a garbled body (all retryable)."""
        return http.json_answer(http.send(self.client, request, what), what)
