"""Which API serves which courier, and the adapters by API code.

Our courier codes (``fulfil.belt.vocab.COURIERS``): ZTO, YTO, YUNDA, STO, JT, SF, JD, EMS. Five have an API
adapter of their own (ZTO, SF, JD, YUNDA, and YTO unverified); STO, J&T and EMS get their waybills through
Cainiao. YTO goes through its own adapter unless the caller wants verified schemes only, then through Cainiao.
The adapter (API) codes, :data:`ADAPTERS`, are those five and ``CAINIAO``; a credential's ``courier`` is the
adapter code of the account (``CAINIAO`` for a Cainiao account).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from integrations.couriers import cainiao, jdl, sf, yto, yunda, zto
from integrations.couriers.base import CourierApi, CourierCredential, TrackingReceiver

CAINIAO = cainiao.ADAPTER

# Our courier code -> the adapter that issues its waybills.
ROUTES: Mapping[str, str] = {
    "ZTO": "ZTO",
    "YTO": "YTO",
    "YUNDA": "YUNDA",
    "STO": CAINIAO,
    "JT": CAINIAO,
    "SF": "SF",
    "JD": "JD",
    "EMS": CAINIAO,
}
COURIERS = tuple(ROUTES)

_CLIENTS: Mapping[str, Callable[..., CourierApi]] = {
    "ZTO": zto.ZtoApi,
    "SF": sf.SfApi,
    "JD": jdl.JdlApi,
    "YUNDA": yunda.YundaApi,
    "YTO": yto.YtoApi,
    CAINIAO: cainiao.CainiaoApi,
}
ADAPTERS = tuple(_CLIENTS)
UNVERIFIED = frozenset({"YTO"})

_RECEIVERS: Mapping[str, TrackingReceiver] = {
    "ZTO": zto.receiver,
    "SF": sf.receiver,
    "JD": jdl.receiver,
    "YUNDA": yunda.receiver,
    "YTO": yto.receiver,
    CAINIAO: cainiao.receiver,
}


def adapter_for(courier: str, *, verified_only: bool = False) -> str:
    """The adapter that issues ``courier``'s waybills (an adapter code is its own); with ``verified_only``,
    never an unverified one. KeyError for an unknown code."""
    try:
        adapter = courier if courier in _CLIENTS else ROUTES[courier]
    except KeyError:
        raise KeyError(f"unknown courier {courier!r}; couriers: {', '.join(COURIERS)}") from None
    if verified_only and adapter in UNVERIFIED:
        if courier not in cainiao.CP_CODES:
            raise KeyError(f"courier {courier!r} has no verified adapter")
        return CAINIAO
    return adapter


def api_for(
    credential: CourierCredential, client: httpx.Client, *, base_url: str | None = None
) -> CourierApi:
    """The signed client of ``credential``'s API over ``client``; ``base_url`` None: the production host."""
    return _CLIENTS[adapter_for(credential.courier)](credential, client, base_url=base_url)


def receiver_for(courier: str) -> TrackingReceiver:
    """The tracking-push receiver of ``courier`` (our code, e.g. ``STO`` -> Cainiao's) or of an adapter.

    YTO's own receiver is unverified; where YTO's waybills come through Cainiao, so do its pushes: ask for
    ``receiver_for("CAINIAO")``.
    """
    return _RECEIVERS[adapter_for(courier)]
