"""Platform app credentials: sealed, rotated two at a time, cached briefly; the CLI and the admin API."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import select, update

import fulfil.cli.intake  # noqa: F401  (registers `fulfil apps` and `fulfil inbox` on main)
from fulfil import settings
from fulfil.api.app import create_app
from fulfil.cli import main
from fulfil.db import session_scope
from fulfil.domain.models import Merchant, PlatformApp
from fulfil.intake import credentials
from fulfil.intake.credentials import (
    AppNotFound,
    CredentialError,
    TooManySecrets,
    UnknownMerchant,
    UnknownPlatform,
    active_credentials,
    deactivate_app,
    register_app,
)
from fulfil.pii import Sealer
from fulfil.settings import SettingsError
from tests.conftest import Backend

SECRET = "dd-secret-0123456789abcdef"
SECRET2 = "dd-secret-rotated-fedcba9876"
TOKEN = "admin-token-0123456789abcdef"


def fp(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


@pytest.fixture
def apps(clean: Backend) -> Iterator[Backend]:
    credentials.invalidate_cache()
    with session_scope(clean.engine) as s:
        s.add(Merchant(code="M1", name="常熟服饰", town="虞山", lon=120.74, lat=31.65))
    yield clean
    credentials.invalidate_cache()


def sealer(b: Backend) -> Sealer:
    return Sealer(b.settings.pii_key)


def rows(b: Backend) -> list[PlatformApp]:
    with session_scope(b.engine) as s:
        return list(s.scalars(select(PlatformApp).order_by(PlatformApp.id)))


# ---- registration -----------------------------------------------------------------------------------


def test_a_registered_secret_is_stored_sealed_with_its_fingerprint(apps: Backend) -> None:
    with session_scope(apps.engine) as s:
        app = register_app(
            s, sealer(apps), "kuaishou", "ks-app", SECRET, "M1", {"message_key": "bWVzc2FnZS1rZXk="}
        )
        assert app.id is not None
    (row,) = rows(apps)
    assert row.secret_fingerprint == fp(SECRET) and len(row.secret_fingerprint) == 8
    assert SECRET.encode() not in row.secret_sealed
    assert b"bWVzc2FnZS1rZXk=" not in row.secret_sealed  # extras are sealed with the secret
    assert row.active and row.merchant_id is not None
    assert SECRET not in repr(row)
    (cred,) = active_credentials(apps.engine, "kuaishou", sealer=sealer(apps))
    assert (cred.platform, cred.app_key, cred.secret) == ("kuaishou", "ks-app", SECRET)
    assert dict(cred.extra) == {"message_key": "bWVzc2FnZS1rZXk="}
    assert SECRET not in repr(cred)


def test_rotation_allows_two_active_secrets_and_refuses_a_third(apps: Backend) -> None:
    with session_scope(apps.engine) as s:
        old = register_app(s, sealer(apps), "doudian", "7001", SECRET)
        register_app(s, sealer(apps), "doudian", "7001", SECRET2)
    secrets = {c.secret for c in active_credentials(apps.engine, "doudian", sealer=sealer(apps))}
    assert secrets == {SECRET, SECRET2}
    with pytest.raises(TooManySecrets) as err, session_scope(apps.engine) as s:
        register_app(s, sealer(apps), "doudian", "7001", "a-third-secret-xyz")
    assert "7001" in str(err.value) and fp(SECRET) in str(err.value) and fp(SECRET2) in str(err.value)
    assert "a-third-secret-xyz" not in str(err.value)
    with session_scope(apps.engine) as s:
        deactivate_app(s, old.id)
        register_app(s, sealer(apps), "doudian", "7001", "a-third-secret-xyz")
    secrets = {c.secret for c in active_credentials(apps.engine, "doudian", sealer=sealer(apps))}
    assert secrets == {SECRET2, "a-third-secret-xyz"}
    # Another key of the same platform has its own two.
    with session_scope(apps.engine) as s:
        register_app(s, sealer(apps), "doudian", "7002", SECRET)
    assert len(active_credentials(apps.engine, "doudian", sealer=sealer(apps))) == 3


def test_two_registrations_at_once_cannot_exceed_two_active_secrets(apps: Backend) -> None:
    """A rotation racing another: the second waits for the first and then sees its secret."""
    with session_scope(apps.engine) as s:
        register_app(s, sealer(apps), "doudian", "7001", SECRET)
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            with session_scope(apps.engine) as s:
                register_app(s, sealer(apps), "doudian", "7001", "the-racing-secret-2")
            outcome.append(None)
        except BaseException as exc:  # re-checked in the test's thread
            outcome.append(exc)

    with session_scope(apps.engine) as first:
        register_app(first, sealer(apps), "doudian", "7001", SECRET2)  # not committed yet
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive(), "the second registration should wait for the first"
    racer.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], TooManySecrets), outcome
    assert sum(r.active for r in rows(apps)) == 2


def test_registering_the_same_secret_again_updates_it_in_place(apps: Backend) -> None:
    with session_scope(apps.engine) as s:
        first = register_app(s, sealer(apps), "shopify", "shop-a", SECRET)
        deactivate_app(s, first.id)
        again = register_app(
            s, sealer(apps), "shopify", "shop-a", SECRET, extra={"shop_domain": "a.myshopify"}
        )
    assert again.id == first.id and len(rows(apps)) == 1
    (cred,) = active_credentials(apps.engine, "shopify", sealer=sealer(apps))
    assert dict(cred.extra) == {"shop_domain": "a.myshopify"}


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"platform": "tiktok"}, UnknownPlatform, ["'tiktok'", "doudian", "woocommerce"]),
        ({"merchant_code": "NOPE"}, UnknownMerchant, ["'NOPE'"]),
        ({"app_secret": SECRET + "\n"}, CredentialError, ["app secret", "newline"]),
        ({"app_secret": ""}, CredentialError, ["app secret is empty"]),
        ({"app_key": "k" * 129}, CredentialError, ["app key", "128"]),
        ({"extra": {"message_key": ""}}, CredentialError, ["extra 'message_key' is empty"]),
    ],
    ids=["platform", "merchant", "whitespace", "empty-secret", "long-key", "empty-extra"],
)
def test_bad_registrations_name_what_is_wrong(
    apps: Backend, kwargs: dict[str, object], error: type[Exception], names: list[str]
) -> None:
    args: dict[str, object] = {"platform": "doudian", "app_key": "7001", "app_secret": SECRET} | kwargs
    with pytest.raises(error) as err, session_scope(apps.engine) as s:
        register_app(s, sealer(apps), **args)  # type: ignore[arg-type]
    for name in names:
        assert name in str(err.value)
    assert rows(apps) == []


def test_deactivating_an_unknown_app_is_named(apps: Backend) -> None:
    with pytest.raises(AppNotFound, match="no platform app with id 99"), session_scope(apps.engine) as s:
        deactivate_app(s, 99)


def test_credentials_are_cached_for_the_ttl(apps: Backend) -> None:
    now = [100.0]
    with session_scope(apps.engine) as s:
        app = register_app(s, sealer(apps), "doudian", "7001", SECRET)

    def read() -> list[str]:
        creds = active_credentials(apps.engine, "doudian", sealer=sealer(apps), clock=lambda: now[0], ttl=5)
        return [c.secret for c in creds]

    assert read() == [SECRET]
    # Deactivated by another process: this one sees it once the cached entry is older than the TTL.
    with apps.engine.begin() as conn:
        conn.execute(update(PlatformApp).where(PlatformApp.id == app.id).values(active=False))
    now[0] += 4.9
    assert read() == [SECRET]
    now[0] += 0.2
    assert read() == []


def test_a_secret_sealed_with_another_key_is_skipped_and_named(
    apps: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with session_scope(apps.engine) as s:
        register_app(s, Sealer(settings.decode_key(settings.new_key(), "k")), "doudian", "7001", SECRET)
        register_app(s, sealer(apps), "doudian", "7002", SECRET2)
    with caplog.at_level(logging.WARNING, logger="fulfil.intake.credentials"):
        creds = active_credentials(apps.engine, "doudian", sealer=sealer(apps))
    assert [c.app_key for c in creds] == ["7002"]
    assert "7001" in caplog.text and "wrong FULFIL_PII_KEY" in caplog.text


# ---- the CLI ---------------------------------------------------------------------------------------------


def test_cli_adds_lists_and_deactivates_apps_without_showing_secrets(apps: Backend) -> None:
    runner = CliRunner()
    r = runner.invoke(
        main,
        [
            "apps",
            "add",
            "--platform",
            "doudian",
            "--app-key",
            "7001",
            "--app-secret",
            "-",
            "--merchant",
            "M1",
        ],
        input=SECRET + "\n",
    )
    assert r.exit_code == 0, r.output
    assert fp(SECRET) in r.output and SECRET not in r.output
    r = runner.invoke(
        main,
        [
            *("apps", "add", "--platform", "kuaishou", "--app-key", "ks", "--app-secret", SECRET2),
            *("--extra", "message_key=c2VjcmV0LW1lc3NhZ2Uta2V5"),
        ],
    )
    assert r.exit_code == 0, r.output
    (cred,) = active_credentials(apps.engine, "doudian", sealer=sealer(apps))
    assert cred.secret == SECRET  # read from stdin, newline dropped
    r = runner.invoke(main, ["apps", "list", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)["apps"]
    assert [(a["platform"], a["app_key"], a["fingerprint"], a["active"]) for a in listed] == [
        ("doudian", "7001", fp(SECRET), True),
        ("kuaishou", "ks", fp(SECRET2), True),
    ]
    assert listed[0]["merchant"] == "M1" and listed[1]["extra_keys"] == ["message_key"]
    assert listed[0]["created_at"]
    for text in (SECRET, SECRET2, "c2VjcmV0LW1lc3NhZ2Uta2V5"):
        assert text not in r.output
    table = runner.invoke(main, ["apps", "list"])
    assert table.exit_code == 0 and "7001" in table.output and SECRET not in table.output

    r = runner.invoke(main, ["apps", "deactivate", str(listed[0]["id"])])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        ["apps", "deactivate", "--platform", "kuaishou", "--app-key", "ks", "--fingerprint", fp(SECRET2)],
    )
    assert r.exit_code == 0, r.output
    assert [a.active for a in rows(apps)] == [False, False]


def test_cli_errors_are_named(apps: Backend) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["apps", "add", "--platform", "tiktok", "--app-key", "k", "--app-secret", SECRET])
    assert r.exit_code == 1 and "unknown platform 'tiktok'" in r.output
    r = runner.invoke(
        main,
        ["apps", "add", "--platform", "jd", "--app-key", "k", "--app-secret", SECRET, "--extra", "novalue"],
    )
    assert r.exit_code == 2 and "NAME=VALUE" in r.output
    r = runner.invoke(main, ["apps", "deactivate", "--platform", "jd"])
    assert r.exit_code == 2 and "--fingerprint" in r.output
    r = runner.invoke(main, ["apps", "deactivate", "42"])
    assert r.exit_code == 1 and "no platform app with id 42" in r.output


# ---- the admin API -------------------------------------------------------------------------------------


def admin_client(b: Backend, token: str | None = TOKEN) -> TestClient:  # type: ignore[type-arg]
    return TestClient(create_app(dataclasses.replace(b.settings, admin_token=token)))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_admin_api_is_off_without_a_token(apps: Backend) -> None:
    with admin_client(apps, None) as c:
        r = c.get("/apps", headers=AUTH)
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "admin API disabled: set FULFIL_ADMIN_TOKEN"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "no-scheme", "basic"],
)
def test_the_admin_api_wants_the_bearer_token(apps: Backend, headers: dict[str, str]) -> None:
    body = {"platform": "doudian", "app_key": "7001", "app_secret": SECRET}
    with admin_client(apps) as c:
        assert c.get("/apps", headers=headers).status_code == 401
        r = c.post("/apps", json=body, headers=headers)
        assert c.delete("/apps/1", headers=headers).status_code == 401
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in r.text and SECRET not in r.text
    assert rows(apps) == []


def test_the_admin_api_registers_lists_and_deactivates(apps: Backend) -> None:
    with admin_client(apps) as c:
        r = c.post(
            "/apps",
            json={
                "platform": "kuaishou",
                "app_key": "ks",
                "app_secret": SECRET,
                "merchant": "M1",
                "extra": {"message_key": "c2VjcmV0LW1lc3NhZ2Uta2V5"},
            },
            headers=AUTH,
        )
        assert r.status_code == 201, r.text
        created = r.json()
        assert (created["app_key"], created["fingerprint"], created["active"]) == ("ks", fp(SECRET), True)
        assert created["merchant"] == "M1" and created["extra_keys"] == ["message_key"]
        r2 = c.post(
            "/apps", json={"platform": "kuaishou", "app_key": "ks", "app_secret": SECRET2}, headers=AUTH
        )
        assert r2.status_code == 201
        r3 = c.post(
            "/apps",
            json={"platform": "kuaishou", "app_key": "ks", "app_secret": "third-one-xx"},
            headers=AUTH,
        )
        assert r3.status_code == 409 and "already has 2 active secrets" in r3.json()["error"]["message"]
        r4 = c.post("/apps", json={"platform": "tiktok", "app_key": "k", "app_secret": SECRET}, headers=AUTH)
        assert r4.status_code == 400 and "unknown platform 'tiktok'" in r4.json()["error"]["message"]
        r5 = c.post("/apps", json={"platform": "jd", "app_key": "k", "app_secret": 5}, headers=AUTH)
        assert r5.status_code == 400
        listed = c.get("/apps", headers=AUTH)
        assert listed.status_code == 200
        assert [a["fingerprint"] for a in listed.json()["apps"]] == [fp(SECRET), fp(SECRET2)]
        gone = c.delete(f"/apps/{created['id']}", headers=AUTH)
        assert gone.status_code == 200 and gone.json()["active"] is False
        assert c.delete("/apps/999", headers=AUTH).status_code == 404
    for resp in (r, r2, r3, r4, listed, gone):
        for text in (SECRET, SECRET2, "third-one-xx", "c2VjcmV0LW1lc3NhZ2Uta2V5", TOKEN):
            assert text not in resp.text
    assert [a.active for a in rows(apps)] == [False, True]


# ---- the setting -----------------------------------------------------------------------------------------


def test_the_admin_token_setting(tmp_path: Path) -> None:
    base = {"FULFIL_DATA_DIR": str(tmp_path)}
    assert settings.load(base).admin_token is None
    s = settings.load(base | {"FULFIL_ADMIN_TOKEN": TOKEN})
    assert s.admin_token == TOKEN and TOKEN not in repr(s)
    with pytest.raises(SettingsError, match=r"^FULFIL_ADMIN_TOKEN: too short \(5 characters\)"):
        settings.load(base | {"FULFIL_ADMIN_TOKEN": "short"})
    with pytest.raises(SettingsError, match=r"^FULFIL_ADMIN_TOKEN: has spaces"):
        settings.load(base | {"FULFIL_ADMIN_TOKEN": TOKEN + " "})


def test_app_in_repr_hides_the_secret() -> None:
    from fulfil.api.apps import AppIn

    assert SECRET not in repr(AppIn("doudian", "7001", SECRET))
