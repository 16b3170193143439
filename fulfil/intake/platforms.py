"""Which adapter speaks for which platform: how to build its order API (and, for pulled platforms, its
increment API) for a credential, over an ``httpx.Client`` from an injectable factory.

The default factory makes a real client with short timeouts (2 s to connect, 5 s in all: a platform that does
not answer in time is a retryable :class:`~integrations.base.ApiError`, and the job retries later with
backoff); the adapter builds absolute URLs from its platform's production base URL. Tests and the demo call
:func:`set_http_client_factory` with a factory whose clients carry a fake's ``httpx.MockTransport``.

Adapter modules are imported when first needed, so importing this module imports no platform code.
Clients are kept per process (keyed by pid: a forked rq work-horse never shares its parent's connections).

Which credential a shop uses: the newest active app of the platform registered for the shop's merchant,
else the newest active app registered without a merchant (a platform-wide app), else none
(:class:`NoCredential`, which the jobs record as an exception naming the shop).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fulfil.domain.models import Platform, PlatformApp
from integrations.base import AppCredential, CanonicalOrder, IncrementApi, OrderApi

HttpClientFactory = Callable[[str], httpx.Client]  # platform name -> a client for its API

CONNECT_TIMEOUT_S = 2.0
TIMEOUT_S = 5.0
PULL_PLATFORMS: tuple[str, ...] = (Platform.TAOBAO.value, Platform.JD.value, Platform.PINDUODUO.value)


class NoAdapter(LookupError):
    """The platform has no adapter for what was asked (an order API, increments)."""


class NoCredential(LookupError):
    """No active app of the platform may act for the shop."""


@dataclass(frozen=True)
class AdapterSpec:
    """Where a platform's adapter lives. Class names are looked up in ``module`` when first used."""

    module: str
    order_api: str
    increment_api: str | None = None
    # A module-level function ``f(shop_code, raw) -> CanonicalOrder | None`` for platforms whose push is the
    # whole order (Shopify, WooCommerce): normalisation then needs no API call.
    order_from_push: str | None = None


SPECS: dict[str, AdapterSpec] = {
    "doudian": AdapterSpec("integrations.doudian", "DoudianOrderApi"),
    "kuaishou": AdapterSpec("integrations.kuaishou", "KuaishouOrderApi"),
    "shopify": AdapterSpec("integrations.shopify", "ShopifyOrderApi", order_from_push="order_from_push"),
    "woocommerce": AdapterSpec(
        "integrations.woocommerce", "WooCommerceOrderApi", order_from_push="order_from_push"
    ),
    # one client class speaks both the order API and the increments
    "taobao": AdapterSpec("integrations.taobao", "TaobaoOrderApi", "TaobaoOrderApi"),
    "jd": AdapterSpec("integrations.jd", "JdOrderApi", "JdOrderApi"),
    "pinduoduo": AdapterSpec("integrations.pinduoduo", "PinduoduoOrderApi", "PinduoduoOrderApi"),
}

_lock = threading.Lock()
_factory: HttpClientFactory | None = None
_clients: dict[tuple[int, str], httpx.Client] = {}


def default_client(platform: str) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        headers={"User-Agent": f"fulfil-intake/{platform}"},
    )


def set_http_client_factory(factory: HttpClientFactory | None) -> None:
    """Make every later API client with ``factory`` (None: the default). Closes the clients made so far."""
    global _factory
    with _lock:
        _factory = factory
        for client in _clients.values():
            client.close()
        _clients.clear()


def http_client(platform: str) -> httpx.Client:
    """This process's client for ``platform``'s API."""
    key = (os.getpid(), platform)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = (_factory or default_client)(platform)
            _clients[key] = client
        return client


def reset() -> None:
    """Back to the default client factory (tests)."""
    set_http_client_factory(None)


def _spec(platform: str) -> AdapterSpec:
    try:
        return SPECS[platform]
    except KeyError:
        raise NoAdapter(f"unknown platform {platform!r}; platforms: {', '.join(SPECS)}") from None


def _adapter_attr(platform: str, name: str) -> Any:
    spec = _spec(platform)
    try:
        module = import_module(spec.module)
    except ImportError as exc:
        raise NoAdapter(f"{platform}: adapter module {spec.module} cannot be imported ({exc})") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise NoAdapter(f"{platform}: {spec.module} has no {name}") from None


def _build(platform: str, class_name: str | None, credential: AppCredential) -> Any:
    if class_name is None:
        raise NoAdapter(f"{platform}: orders are not pulled in increments")
    return _adapter_attr(platform, class_name)(credential, http_client(platform))


def order_api(platform: str, credential: AppCredential) -> OrderApi:
    """The platform's signed order API acting with ``credential``."""
    api: OrderApi = _build(platform, _spec(platform).order_api, credential)
    return api


def increment_api(platform: str, credential: AppCredential) -> IncrementApi:
    """The platform's increment (pull) API acting with ``credential``."""
    api: IncrementApi = _build(platform, _spec(platform).increment_api, credential)
    return api


def order_from_push(platform: str) -> Callable[[str, bytes], CanonicalOrder | None] | None:
    """The platform's reader of whole orders out of pushed messages, or None (fetch through the API)."""
    name = _spec(platform).order_from_push
    if name is None:
        return None
    try:
        reader = _adapter_attr(platform, name)
    except NoAdapter:
        return None
    return reader if callable(reader) else None


# --- credentials ----------------------------------------------------------------------------------------


def shop_app_keys(session: Session, platform: str, merchant_ids: set[int]) -> dict[int, list[str]]:
    """Per merchant, the app keys that may act for its shops, preferred first (see module docstring)."""
    rows = session.execute(
        select(PlatformApp.app_key, PlatformApp.merchant_id)
        .where(PlatformApp.platform == Platform(platform), PlatformApp.active.is_(True))
        .order_by(PlatformApp.id.desc())
    ).all()
    shared = [key for key, mid in rows if mid is None]
    return {
        m: list(dict.fromkeys([key for key, mid in rows if mid == m] + shared)) for m in sorted(merchant_ids)
    }


def credential_for(engine: Engine, platform: str, app_keys: list[str], shop_code: str) -> AppCredential:
    """The credential to act for a shop with, given its preferred app keys (:func:`shop_app_keys`)."""
    from fulfil.intake.credentials import active_credentials

    creds = active_credentials(engine, platform)
    for key in app_keys:
        for cred in creds:  # newest first: during a rotation the new secret
            if cred.app_key == key:
                return cred
    raise NoCredential(
        f"no active {platform} app may act for shop {shop_code!r}; register one (fulfil apps add)"
    )
