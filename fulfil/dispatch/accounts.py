"""Our accounts with the couriers' APIs, and the adapter that speaks for a courier.

A courier's parcels go through its own API where it has an adapter (ZTO, SF, JD, Yunda; YTO unverified)
and through Cainiao's electronic waybill otherwise (STO, J&T, EMS); ``registry.adapter_for`` says which.
An account's secret and extra fields are stored sealed, like a platform app's, and never shown.

HTTP clients come from :func:`fulfil.intake.platforms.http_client` under the name ``courier:<API>``, so one
injectable factory serves both the platforms and the couriers (tests and the demo give it the fakes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfil.domain.models import CourierAccount
from fulfil.intake import platforms
from fulfil.pii import Sealer
from integrations.couriers import registry
from integrations.couriers.base import CourierApi, CourierCredential


class NoAccount(LookupError):
    """No active account with the API a courier's parcels go through."""


def add_account(
    session: Session,
    sealer: Sealer,
    api: str,
    app_key: str,
    secret: str,
    extra: Mapping[str, str] | None = None,
    base_url: str | None = None,
) -> CourierAccount:
    """Register an account with ``api`` (a courier code with an adapter, or CAINIAO)."""
    api = api.strip().upper()
    if api not in registry.ADAPTERS:
        raise ValueError(f"unknown courier API {api!r}; known: {', '.join(sorted(registry.ADAPTERS))}")
    for what, value in (("app key", app_key), ("secret", secret)):
        if not value or value != value.strip():
            raise ValueError(f"the {what} is empty or padded with spaces")
    blob = sealer.seal_bytes(json.dumps([secret, dict(extra or {})], ensure_ascii=False).encode())
    account = CourierAccount(courier=api, app_key=app_key, secret_sealed=blob, base_url=base_url, active=True)
    session.add(account)
    session.flush()
    return account


def credential(session: Session, sealer: Sealer, api: str) -> tuple[CourierCredential, str | None]:
    """The newest active account with ``api`` as a credential, and its base URL (None: production)."""
    account = session.scalars(
        select(CourierAccount)
        .where(CourierAccount.courier == api, CourierAccount.active)
        .order_by(CourierAccount.id.desc())
        .limit(1)
    ).first()
    if account is None:
        raise NoAccount(f"no active account with the {api} API (fulfil couriers add-account {api} ...)")
    return credential_of(sealer, account), account.base_url


def credential_of(sealer: Sealer, account: CourierAccount) -> CourierCredential:
    secret, extra = json.loads(sealer.open_bytes(account.secret_sealed, "courier account"))
    return CourierCredential(account.courier, account.app_key, secret, extra)


def api_for(session: Session, sealer: Sealer, courier_code: str) -> CourierApi:
    """The adapter through which ``courier_code``'s waybills and pickups go, with its account."""
    api = registry.adapter_for(courier_code)
    try:
        cred, base_url = credential(session, sealer, api)
    except NoAccount:
        if api not in registry.UNVERIFIED:
            raise
        # No account with the unverified adapter (YTO): its waybills go through Cainiao, whose scheme is
        # known.
        api = registry.adapter_for(courier_code, verified_only=True)
        cred, base_url = credential(session, sealer, api)
    return registry.api_for(cred, platforms.http_client(f"courier:{api}"), base_url=base_url)
