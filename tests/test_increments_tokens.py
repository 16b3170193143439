"""Per-shop tokens of the pull platforms: the shop's own, else the app's, else an error naming both keys."""

from __future__ import annotations

import httpx
import pytest

from integrations.base import AppCredential
from integrations.jd import JdOrderApi
from integrations.pinduoduo import PinduoduoOrderApi
from integrations.taobao import TaobaoOrderApi

CASES = [
    (TaobaoOrderApi, "taobao", "session"),
    (JdOrderApi, "jd", "access_token"),
    (PinduoduoOrderApi, "pinduoduo", "access_token"),
]


def _client() -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))


@pytest.mark.parametrize(("api_cls", "platform", "name"), CASES)
def test_the_shop_token_wins_over_the_app_token(api_cls: type, platform: str, name: str) -> None:
    cred = AppCredential(platform, "key", "secret", {f"{name}.S1": "shop-token", name: "app-token"})
    api = api_cls(cred, _client())
    token_of = api.token
    assert token_of("S1") == "shop-token"
    assert token_of("S2") == "app-token"


@pytest.mark.parametrize(("api_cls", "platform", "name"), CASES)
def test_a_missing_token_is_named(api_cls: type, platform: str, name: str) -> None:
    api = api_cls(AppCredential(platform, "key", "secret", {}), _client())
    token_of = api.token
    with pytest.raises(
        ValueError, match=rf"{platform} app key has no {name} for shop S1: set extra\['{name}.S1'\]"
    ):
        token_of("S1")


@pytest.mark.parametrize(
    ("lookup", "platform", "key"),
    [
        ("integrations.taobao:company_code", "taobao", "company_codes"),
        ("integrations.jd:logistics_id", "jd", "logistics_ids"),
        ("integrations.pinduoduo:logistics_id", "pinduoduo", "logistics_ids"),
    ],
)
def test_courier_ids_take_the_apps_override_and_name_the_key_when_unknown(
    lookup: str, platform: str, key: str
) -> None:
    import importlib

    from integrations.base import ApiError

    module, name = lookup.split(":")
    fn = getattr(importlib.import_module(module), name)
    cred = AppCredential(platform, "key", "secret", {key: '{"JT": "jt-42"}'})
    assert fn(cred, "JT") == "jt-42"
    with pytest.raises(ApiError, match=rf"for courier 'NOPE' \(known: .*; set extra\['{key}'\]\)") as caught:
        fn(cred, "NOPE")
    assert (caught.value.code, caught.value.retryable) == ("unknown_courier", False)
