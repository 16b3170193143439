"""Receiver addresses from the platforms: the province as a GB/T 2260 code, the city, the sealed rest.

Platforms write provinces in several forms: "广东省" (the full name), "广东" (without the suffix), "广西壮族
自治区" / "广西", "北京市" / "北京", and cross-border stores write pinyin ("Guangdong", "Inner Mongolia").
All of them map to the two-digit code of :data:`fulfil.belt.geo.PROVINCES`, the 31 mainland provinces the belt
ships to. Anything else in a Chinese address — Hong Kong, Macau, Taiwan, a typo — is an :class:`AddressError`
naming what was given, and the order waits in the exceptions queue (kind ``bad_address``).

A cross-border store's address that names another country (``Address.country``, e.g. ``US``) goes abroad: its
parcel is handed to a forwarder's consolidation warehouse in the belt, so the order's province is
:data:`fulfil.belt.geo.EXPORT_HANDOVER_PROVINCE` (its domestic leg), its city reads ``"US Miami"`` and its
country is kept; the state, postcode and street go into the sealed receiver.

Only province and city stay in clear (the plan prices shipping by province); the receiver's name, phone and
street address are sealed by the caller (:class:`fulfil.pii.Sealer`) and never logged: an
:class:`AddressError` names the province or the missing field, never the person.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from fulfil.belt.geo import EXPORT_HANDOVER_PROVINCE, PROVINCES
from fulfil.pii import Receiver
from integrations.base import Address

CITY_MAX = 32  # orders.city

# Suffixes stripped to reach a province's short name, longest first ("壮族自治区" before "自治区").
_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")

# Pinyin and English names as cross-border stores write them (lower case, no spaces, hyphens or apostrophes).
_LATIN: dict[str, tuple[str, ...]] = {
    "11": ("beijing", "peking"),
    "12": ("tianjin",),
    "13": ("hebei",),
    "14": ("shanxi",),
    "15": ("innermongolia", "neimenggu", "neimongol"),
    "21": ("liaoning",),
    "22": ("jilin",),
    "23": ("heilongjiang",),
    "31": ("shanghai",),
    "32": ("jiangsu",),
    "33": ("zhejiang",),
    "34": ("anhui",),
    "35": ("fujian",),
    "36": ("jiangxi",),
    "37": ("shandong",),
    "41": ("henan",),
    "42": ("hubei",),
    "43": ("hunan",),
    "44": ("guangdong",),
    "45": ("guangxi",),
    "46": ("hainan",),
    "50": ("chongqing",),
    "51": ("sichuan",),
    "52": ("guizhou",),
    "53": ("yunnan",),
    "54": ("tibet", "xizang"),
    "61": ("shaanxi",),
    "62": ("gansu",),
    "63": ("qinghai",),
    "64": ("ningxia",),
    "65": ("xinjiang",),
}
_LATIN_SUFFIXES = ("province", "autonomousregion", "municipality", "shi", "sheng", "zizhiqu")
# What some platforms put in the city field of a municipality instead of a city.
_CITY_PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}
_NOT_SERVED = {"香港", "澳门", "台湾", "hongkong", "macau", "macao", "taiwan"}
_SPACES = re.compile(r"[\s\-'’·.,]+")
_COUNTRY = re.compile(r"[A-Z]{2}")
HOME = "CN"


class AddressError(ValueError):
    """The address cannot be shipped to; the message names the field and what was given (never PII)."""


@dataclass(frozen=True)
class ParsedAddress:
    province: str  # GB/T 2260 two-digit code
    city: str  # in clear, at most CITY_MAX characters
    receiver: Receiver  # to be sealed: name, phone, district + street
    country: str = HOME  # ISO 3166-1 alpha-2 of the destination

    def __repr__(self) -> str:  # the receiver shows masked only (Receiver.__repr__)
        return (
            f"ParsedAddress(province={self.province!r}, city={self.city!r}, country={self.country!r}, "
            f"receiver={self.receiver!r})"
        )


def _short(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for p in PROVINCES:
        index[p.name] = p.code
        index[_short(p.name)] = p.code
        index[p.code] = p.code  # a platform that already sends the code
        for latin in _LATIN.get(p.code, ()):
            index[latin] = p.code
    return index


_INDEX = _build_index()


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def province_code(name: str) -> str:
    """The GB/T 2260 code of a mainland province written in any of the forms above; AddressError if none."""
    text = _clean(name)
    if not text:
        raise AddressError("the address names no province")
    for key in (text, _short(text)):
        if key in _INDEX:
            return _INDEX[key]
    latin = _SPACES.sub("", text.lower())
    for suffix in _LATIN_SUFFIXES:
        if latin.endswith(suffix) and len(latin) > len(suffix):
            latin = latin[: -len(suffix)]
            break
    if latin in _INDEX:
        return _INDEX[latin]
    if _short(text) in _NOT_SERVED or latin in _NOT_SERVED:
        raise AddressError(f"province {name.strip()!r} is outside the mainland provinces the belt ships to")
    raise AddressError(f"province {name.strip()!r} is not a mainland Chinese province")


def parse_address(address: Address) -> ParsedAddress:
    """Province code, city and the receiver to seal; :class:`AddressError` naming what is wrong.

    The four municipalities' platforms often repeat the municipality as the city ("北京市 北京市 朝阳区"); the
    district then serves as the city, as in the belt's own geography.
    """
    country = _clean(address.country).upper()
    if country and country != HOME:
        return _abroad(address, country)
    code = province_code(address.province)
    city = _clean(address.city)
    district = _clean(address.district)
    if not city or city in _CITY_PLACEHOLDERS or _short(city) == _short(_clean(address.province)):
        city = district or city
    if not city:
        raise AddressError(f"the address in province {code} names no city or district")
    detail = _clean(address.detail)
    if not detail:
        raise AddressError(f"the address in {city} has no street address")
    street = detail if not district or detail.startswith(district) or district == city else district + detail
    return ParsedAddress(
        province=code,
        city=city[:CITY_MAX],
        receiver=Receiver(name=_clean(address.name), phone=_clean(address.phone), address=street),
    )


def _abroad(address: Address, country: str) -> ParsedAddress:
    """A destination outside China (see the module docstring)."""
    if not _COUNTRY.fullmatch(country):
        raise AddressError(f"country {country!r} is not an ISO 3166-1 two-letter code")
    city = _clean(address.city)
    if not city:
        raise AddressError(f"the address in {country} names no city")
    detail = _clean(address.detail)
    if not detail:
        raise AddressError(f"the address in {city}, {country} has no street address")
    region = ", ".join(part for part in (city, _clean(address.province), country) if part)
    return ParsedAddress(
        province=EXPORT_HANDOVER_PROVINCE,
        city=f"{country} {city}"[:CITY_MAX],
        receiver=Receiver(
            name=_clean(address.name), phone=_clean(address.phone), address=f"{detail}; {region}"
        ),
        country=country,
    )
