"""Receiver addresses: province names in the forms platforms write them → GB/T 2260 codes; bad ones named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfil.belt.geo import EXPORT_HANDOVER_PROVINCE, PROVINCES
from fulfil.intake.address import AddressError, parse_address, province_code
from integrations.base import Address


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("广东", "44"),
        ("广东省", "44"),
        (" 广东省 ", "44"),
        ("广西壮族自治区", "45"),
        ("广西", "45"),
        ("北京市", "11"),
        ("北京", "11"),
        ("内蒙古自治区", "15"),
        ("内蒙古", "15"),
        ("新疆维吾尔自治区", "65"),
        ("新疆", "65"),
        ("宁夏回族自治区", "64"),
        ("西藏自治区", "54"),
        ("黑龙江省", "23"),
        ("Guangdong", "44"),
        ("guangdong province", "44"),
        ("Inner Mongolia", "15"),
        ("Shaanxi", "61"),
        ("Shanxi", "14"),
        ("Tibet", "54"),
        ("44", "44"),
    ],
)
def test_province_forms_map_to_their_code(written: str, code: str) -> None:
    assert province_code(written) == code


@given(st.sampled_from(PROVINCES), st.sampled_from(["full", "short"]))
def test_every_province_of_the_belt_parses_in_full_and_short_form(province: object, form: str) -> None:
    from fulfil.belt.geo import Province

    assert isinstance(province, Province)
    name = province.name
    if form == "short":
        for suffix in ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
    assert province_code(name) == province.code


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("香港特别行政区", "outside the mainland"),
        ("台湾省", "outside the mainland"),
        ("Hong Kong", "outside the mainland"),
        ("广东东省", "not a mainland Chinese province"),
        ("California", "not a mainland Chinese province"),
        ("", "names no province"),
    ],
)
def test_unknown_provinces_are_named_in_the_error(written: str, said: str) -> None:
    with pytest.raises(AddressError, match=said) as err:
        province_code(written)
    if written.strip():
        assert written.strip() in str(err.value)


def test_an_address_keeps_city_in_clear_and_the_rest_for_sealing() -> None:
    parsed = parse_address(Address("张三", "13800001234", "广东省", "广州市", "天河区", "体育西路1号"))
    assert (parsed.province, parsed.city) == ("44", "广州市")
    assert parsed.receiver.name == "张三" and parsed.receiver.phone == "13800001234"
    assert parsed.receiver.address == "天河区体育西路1号"
    assert "13800001234" not in repr(parsed) and "张三" not in repr(parsed)  # masked in logs


def test_a_municipality_uses_its_district_as_the_city() -> None:
    for city in ("北京市", "北京", "市辖区", ""):
        parsed = parse_address(Address("李四", "13900001111", "北京市", city, "朝阳区", "建国路88号"))
        assert (parsed.province, parsed.city) == ("11", "朝阳区")


def test_an_address_without_street_or_city_is_refused_without_personal_data() -> None:
    with pytest.raises(AddressError, match="no street address") as err:
        parse_address(Address("王五", "13700009999", "浙江省", "杭州市", "西湖区", "  "))
    assert "王五" not in str(err.value) and "13700009999" not in str(err.value)
    with pytest.raises(AddressError, match="names no city"):
        parse_address(Address("王五", "13700009999", "浙江省", "", "", "文三路1号"))


def test_an_address_abroad_goes_out_through_the_belts_export_hand_over() -> None:
    parsed = parse_address(
        Address("Ava Smith", "+1 305-555-0101", "FL", "Miami", "", "12 Oak Ave, 33101, US", country="us")
    )
    assert (parsed.province, parsed.city, parsed.country) == (EXPORT_HANDOVER_PROVINCE, "US Miami", "US")
    assert parsed.receiver.name == "Ava Smith" and parsed.receiver.phone == "+1 305-555-0101"
    assert parsed.receiver.address == "12 Oak Ave, 33101, US; Miami, FL, US"
    assert "Ava" not in repr(parsed) and "Oak" not in repr(parsed)


def test_china_named_as_a_country_is_a_domestic_address() -> None:
    parsed = parse_address(Address("李雷", "13800001234", "Zhejiang", "Hangzhou", "", "1 Wensan Rd", "CN"))
    assert (parsed.province, parsed.city, parsed.country) == ("33", "Hangzhou", "CN")


@pytest.mark.parametrize(
    ("address", "said"),
    [
        (Address("A", "1", "FL", "Miami", "", "12 Oak Ave", "USA"), "country 'USA' is not an ISO"),
        (Address("A", "1", "FL", "", "", "12 Oak Ave", "US"), "the address in US names no city"),
        (Address("A", "1", "FL", "Miami", "", " ", "US"), "the address in Miami, US has no street address"),
    ],
)
def test_an_address_abroad_without_country_code_city_or_street_is_refused(
    address: Address, said: str
) -> None:
    with pytest.raises(AddressError, match=said):
        parse_address(address)
