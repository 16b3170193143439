"""Master data of a generated belt: merchants and their shops, styles and SKUs, workshops with their capacity
calendars and qualifications, shared warehouses with stock, couriers with points and price tables.

Everything is drawn from seeded generators, one per section, so a section's data depends only on the seed and
the parameters. Rows refer to each other by *position* (row index in the parent table); the loader turns
positions into ids once it has reserved the id ranges, so generation never needs the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fulfil.belt import geo, vocab
from fulfil.domain.models import Platform

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Planning horizon of the capacity calendar: the day itself and 15 more, so that pre-sale ship-bys
# (at most 15 days out) fall inside it.
HORIZON_DAYS = 16

# Douyin-heavy platform mix of the belt's shops (share of shops).
PLATFORM_MIX: tuple[tuple[Platform, float, str], ...] = (
    (Platform.DOUDIAN, 0.42, "抖音小店"),
    (Platform.KUAISHOU, 0.16, "快手小店"),
    (Platform.TAOBAO, 0.15, "淘宝店"),
    (Platform.PINDUODUO, 0.13, "拼多多店"),
    (Platform.JD, 0.07, "京东旗舰店"),
    (Platform.SHOPIFY, 0.04, "Shopify"),
    (Platform.WOOCOMMERCE, 0.03, "WooCommerce"),
)
PLATFORMS: tuple[Platform, ...] = tuple(p for p, _, _ in PLATFORM_MIX)

# Market shares of the couriers at the belt's points (parcels), and whether they are the cheap tongda kind.
COURIER_SHARE = {
    "ZTO": 0.22,
    "YTO": 0.17,
    "YUNDA": 0.16,
    "STO": 0.12,
    "JT": 0.16,
    "SF": 0.08,
    "JD": 0.06,
    "EMS": 0.03,
}
TONGDA_FACTOR = {"ZTO": 1.00, "YTO": 1.03, "YUNDA": 0.98, "STO": 0.96, "JT": 0.93, "EMS": 1.35}

# Expected units per order (lines x quantity), used to size stock and warehouse capacity.
UNITS_PER_ORDER = 1.35
STREAM_SHARE = 0.38  # of the day's orders that come from live streams


def stream_count(merchants: int) -> int:
    """How many live streams a day of a belt with this many merchants has."""
    return int(np.clip(round(3 + merchants / 10), 3, 12))


def stream_candidates(style_weight: FloatArray, n_streams: int) -> IntArray:
    """The styles hosts may feature: the most popular ones (a twentieth of them, at least one per stream)."""
    top: IntArray = np.argsort(-style_weight, kind="stable")[: max(n_streams, len(style_weight) // 20)]
    return top


@dataclass
class TableData:
    """Rows of one table, column-wise. ``refs`` maps a column to the parent table whose row positions it
    holds; ``with_id`` says whether the loader assigns an ``id`` (the row position plus the reserved base)."""

    name: str
    columns: dict[str, Any]  # column name -> numpy array or list, all of the same length
    refs: dict[str, str] = field(default_factory=dict)
    with_id: bool = True

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass
class Master:
    """The generated master data, and the arrays the order stream draws from."""

    tables: list[TableData]  # parents before children
    sku_weight: FloatArray  # popularity share of each SKU, sums to 1
    sku_style: IntArray
    sku_merchant: IntArray
    style_merchant: IntArray
    style_first_sku: IntArray  # SKUs of a style are contiguous
    style_nskus: IntArray
    style_weight: FloatArray
    merchant_first_sku: IntArray  # SKUs of a merchant are contiguous too
    merchant_nskus: IntArray
    shop_merchant: IntArray  # shops of a merchant are contiguous
    shop_platform: IntArray  # index into PLATFORMS
    shop_weight: FloatArray  # share of its merchant's orders
    merchant_first_shop: IntArray

    def table(self, name: str) -> TableData:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


def _rng(seed: int, section: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(section,)))


def _pick_towns(rng: np.random.Generator, n: int, weights: list[float]) -> IntArray:
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum()).astype(np.int64)


def _place(rng: np.random.Generator, towns: IntArray, spread: float) -> tuple[list[float], list[float]]:
    lon = np.array([geo.TOWNS[t].lon for t in towns]) + rng.normal(0.0, spread, len(towns))
    lat = np.array([geo.TOWNS[t].lat for t in towns]) + rng.normal(0.0, spread * 0.85, len(towns))
    return np.round(lon, 5).tolist(), np.round(lat, 5).tolist()


def _grouped_starts(groups: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """First row and row count of each group in an array sorted by group."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return starts, counts


def generate_master(
    *, seed: int, day: dt.date, orders: int, merchants: int, skus: int, workshops: int, warehouses: int
) -> Master:
    tables: list[TableData] = []

    # --- process families ---------------------------------------------------------------------------------
    fam_codes = [f[0] for f in vocab.PROCESS_FAMILIES]
    fam_share = np.array([f[2] for f in vocab.PROCESS_FAMILIES])
    fam_share = fam_share / fam_share.sum()
    tables.append(
        TableData("process_families", {"code": fam_codes, "name": [f[1] for f in vocab.PROCESS_FAMILIES]})
    )

    # --- merchants ----------------------------------------------------------------------------------------
    rng = _rng(seed, 1)
    m_town = _pick_towns(rng, merchants, [t.merchants for t in geo.TOWNS])
    m_lon, m_lat = _place(rng, m_town, 0.006)
    m_size = rng.lognormal(0.0, 1.0, merchants)  # how much of the belt's trade a merchant has
    words = rng.integers(0, len(vocab.FIRM_WORDS), (merchants, 2))
    m_names = [
        f"常熟市{vocab.FIRM_WORDS[a]}{vocab.FIRM_WORDS[b]}服饰有限公司"
        if a != b
        else f"常熟市{vocab.FIRM_WORDS[a]}服饰有限公司"
        for a, b in words.tolist()
    ]
    m_short = [f"{vocab.FIRM_WORDS[a]}{vocab.FIRM_WORDS[b]}" for a, b in words.tolist()]
    tables.append(
        TableData(
            "merchants",
            {
                "code": [f"M{i + 1:05d}" for i in range(merchants)],
                "name": m_names,
                "town": [geo.TOWNS[t].name for t in m_town],
                "lon": m_lon,
                "lat": m_lat,
                "pools_stock": (rng.random(merchants) < 0.3).tolist(),
            },
        )
    )

    # --- platform shops -----------------------------------------------------------------------------------
    rng = _rng(seed, 2)
    size_rank = np.argsort(np.argsort(-m_size)) / max(merchants - 1, 1)  # 0 = biggest merchant
    n_shops = np.minimum(1 + rng.poisson(1.2 * (1.0 - size_rank) + 0.2), 5)
    mix = np.array([w for _, w, _ in PLATFORM_MIX])
    mix = mix / mix.sum()
    shop_merchant_l: list[int] = []
    shop_platform_l: list[int] = []
    for m, k in enumerate(n_shops.tolist()):
        # A merchant's first shop is most often on Douyin: that is where the belt's streams run.
        first = 0 if rng.random() < 0.7 else int(rng.choice(len(mix), p=mix))
        plats = [first, *rng.choice(len(mix), size=k - 1, p=mix).tolist()]
        shop_merchant_l += [m] * k
        shop_platform_l += plats
    shop_merchant = np.array(shop_merchant_l, dtype=np.int64)
    shop_platform = np.array(shop_platform_l, dtype=np.int64)
    n_shop = len(shop_merchant)
    shop_weight = mix[shop_platform] * rng.lognormal(0.0, 0.4, n_shop)
    shop_weight /= np.bincount(shop_merchant, weights=shop_weight, minlength=merchants)[shop_merchant]
    merchant_first_shop, _ = _grouped_starts(shop_merchant, merchants)
    shop_numbers = rng.choice(89_999_999, size=n_shop, replace=False) + 10_000_001
    shop_codes: list[str] = []
    shop_names: list[str] = []
    for s in range(n_shop):
        plat, label = PLATFORMS[shop_platform[s]], PLATFORM_MIX[shop_platform[s]][2]
        m = int(shop_merchant[s])
        if plat is Platform.SHOPIFY:
            shop_codes.append(f"cs-{m + 1:05d}-{s}.myshopify.com")
        elif plat is Platform.WOOCOMMERCE:
            shop_codes.append(f"shop-{m + 1:05d}-{s}.example.com")
        else:
            shop_codes.append(str(int(shop_numbers[s])))
        shop_names.append(f"{m_short[m]}服饰{label}")
    tables.append(
        TableData(
            "platform_shops",
            {
                "platform": [PLATFORMS[p].value for p in shop_platform],
                "shop_code": shop_codes,
                "name": shop_names,
                "merchant_id": shop_merchant,
            },
            refs={"merchant_id": "merchants"},
        )
    )

    # --- styles and SKUs ----------------------------------------------------------------------------------
    rng = _rng(seed, 3)
    max_per_style = max(1, skus // merchants)  # keeps at least one style per merchant
    st_family: list[int] = []
    st_garment: list[tuple[str, int, str]] = []
    st_combos: list[list[tuple[int, tuple[str, float, float]]]] = []  # (colour, size) of each SKU
    total = 0
    while total < skus:
        f = int(rng.choice(len(fam_share), p=fam_share))
        garments = vocab.GARMENTS[fam_codes[f]]
        g = garments[int(rng.integers(len(garments)))]
        sizes = vocab.SIZES[g[2]]
        if g[2] == "adult" and rng.random() < 0.1:
            sizes = vocab.SIZES["free"]
        elif len(sizes) > 3:
            k = int(rng.integers(3, len(sizes) + 1))
            lo = int(rng.integers(0, len(sizes) - k + 1))
            sizes = sizes[lo : lo + k]
        colours = rng.choice(len(vocab.COLOURS), size=1 + int(rng.binomial(4, 0.4)), replace=False).tolist()
        combos = [(c, sz) for c in colours for sz in sizes]
        combos = combos[: min(len(combos), max_per_style, skus - total)]
        st_family.append(f)
        st_garment.append(g)
        st_combos.append(combos)
        total += len(combos)
    n_styles = len(st_family)
    # Every merchant gets a style; the rest go to merchants in proportion to their size.
    style_merchant = np.concatenate(
        [
            rng.permutation(merchants),
            rng.choice(merchants, size=n_styles - merchants, p=m_size / m_size.sum()),
        ]
    ).astype(np.int64)
    order = np.argsort(style_merchant, kind="stable")  # a merchant's styles (and so SKUs) are contiguous
    style_merchant = style_merchant[order]
    st_family = [st_family[i] for i in order]
    st_garment = [st_garment[i] for i in order]
    st_combos = [st_combos[i] for i in order]
    style_nskus = np.array([len(c) for c in st_combos], dtype=np.int64)
    style_first_sku = np.concatenate([[0], np.cumsum(style_nskus)[:-1]]).astype(np.int64)
    # Zipf popularity over styles in a random order: a few hits carry much of the day.
    style_rank = rng.permutation(n_styles)
    style_weight: FloatArray = np.power(style_rank + 1.0, -1.1, dtype=np.float64)
    style_weight /= style_weight.sum()

    style_codes: list[str] = []
    style_names: list[str] = []
    per_merchant = np.zeros(merchants, dtype=np.int64)
    for s in range(n_styles):
        m = int(style_merchant[s])
        per_merchant[m] += 1
        style_codes.append(f"M{m + 1:05d}-{per_merchant[m]:04d}")
        style_names.append(
            f"{vocab.STYLE_ADJECTIVES[int(rng.integers(len(vocab.STYLE_ADJECTIVES)))]}{st_garment[s][0]}"
        )
    fam_lo = np.array([f[3] for f in vocab.PROCESS_FAMILIES])[st_family]
    fam_hi = np.array([f[4] for f in vocab.PROCESS_FAMILIES])[st_family]
    minutes = np.round(rng.uniform(fam_lo, fam_hi) * 2.0) / 2.0
    tables.append(
        TableData(
            "styles",
            {
                "merchant_id": style_merchant,
                "code": style_codes,
                "name": style_names,
                "process_family_id": np.array(st_family, dtype=np.int64),
                "minutes_per_unit": minutes,
                "min_lot": rng.choice(np.array([50, 60, 80, 100, 120, 150, 200]), size=n_styles),
                "changeover_fen": rng.integers(30, 301, n_styles) * 100,
            },
            refs={"merchant_id": "merchants", "process_family_id": "process_families"},
        )
    )

    sku_style = np.repeat(np.arange(n_styles, dtype=np.int64), style_nskus)
    sku_codes: list[str] = []
    sku_colour: list[str] = []
    sku_size: list[str] = []
    sku_weight_g: list[int] = []
    sku_share = np.empty(skus)
    for s in range(n_styles):
        combos = st_combos[s]
        colours = sorted({c for c, _ in combos}, key=[c for c, _ in combos].index)
        colour_w = np.sort(rng.dirichlet(np.full(len(colours), 1.5)))[::-1]
        cw = dict(zip(colours, colour_w.tolist(), strict=True))
        within = np.array([cw[c] * sz[1] for c, sz in combos])
        sku_share[style_first_sku[s] : style_first_sku[s] + len(combos)] = (
            style_weight[s] * within / within.sum()
        )
        base_g = st_garment[s][1]
        for c, sz in combos:
            code, name = vocab.COLOURS[c]
            sku_codes.append(f"{style_codes[s]}-{code}-{sz[0]}")
            sku_colour.append(name)
            sku_size.append(sz[0])
            sku_weight_g.append(round(base_g * sz[2] * float(rng.uniform(0.95, 1.05))))
    sku_share /= sku_share.sum()
    sku_merchant = style_merchant[sku_style]
    merchant_first_sku, merchant_nskus = _grouped_starts(sku_merchant, merchants)
    tables.append(
        TableData(
            "skus",
            {"style_id": sku_style, "code": sku_codes, "colour": sku_colour, "size": sku_size,
             "weight_g": sku_weight_g},
            refs={"style_id": "styles"},
        )
    )  # fmt: skip

    # --- platform SKU mappings: every shop lists every SKU of its merchant ---------------------------------
    map_counts = merchant_nskus[shop_merchant]
    map_shop = np.repeat(np.arange(n_shop, dtype=np.int64), map_counts)
    offsets = np.arange(len(map_shop)) - np.repeat(np.cumsum(map_counts) - map_counts, map_counts)
    map_sku = merchant_first_sku[shop_merchant][map_shop] + offsets
    # Platform SKU ids look random but are unique: a bijection of the row number modulo 10^15.
    salt = int(rng.integers(10**14))
    ids = (np.arange(len(map_shop), dtype=np.int64) * 7_919_393 + salt) % 10**15
    foreign = np.isin(
        shop_platform[map_shop], [PLATFORMS.index(Platform.SHOPIFY), PLATFORMS.index(Platform.WOOCOMMERCE)]
    )
    map_codes = [
        sku_codes[k] if f else f"{x:015d}"
        for k, f, x in zip(map_sku.tolist(), foreign.tolist(), ids.tolist(), strict=True)
    ]
    tables.append(
        TableData(
            "platform_sku_mappings",
            {"shop_id": map_shop, "platform_sku_code": map_codes, "sku_id": map_sku},
            refs={"shop_id": "platform_shops", "sku_id": "skus"},
        )
    )

    # --- workshops, their capacity calendars and qualifications --------------------------------------------
    rng = _rng(seed, 4)
    w_town = _pick_towns(rng, workshops, [t.workshops for t in geo.TOWNS])
    w_lon, w_lat = _place(rng, w_town, 0.012)
    workers = np.clip(np.round(rng.lognormal(np.log(40.0), 0.6, workshops)), 10, 200).astype(np.int64)
    quality = np.round(np.clip(rng.beta(20.0, 1.6, workshops), 0.80, 0.995), 3)
    reliability = np.round(np.clip(rng.beta(14.0, 1.5, workshops), 0.70, 0.995), 3)
    # Capacity follows the minutes the styles need, not the count of styles.
    style_fam = np.array(st_family, dtype=np.int64)
    fam_demand = np.bincount(style_fam, weights=style_weight * minutes, minlength=len(fam_codes)) + 1e-3
    fam_demand /= fam_demand.sum()
    primary = rng.choice(len(fam_codes), size=workshops, p=fam_demand)
    w_fams: list[list[int]] = [[int(p)] for p in primary]
    for w in range(workshops):
        if rng.random() < 0.35:
            second = int(rng.choice(len(fam_codes), p=fam_demand))
            if second not in w_fams[w]:
                w_fams[w].append(second)
    for f in sorted(set(st_family)):  # every family some style needs has a workshop
        if not any(f in fams for fams in w_fams):
            w_fams[f % workshops].append(f)
    # Labour rate in fen per minute: better workshops charge more.
    rate = 38.0 + 25.0 * (quality - 0.85) / 0.15 + rng.normal(0.0, 3.0, workshops)
    rests_sunday = rng.random(workshops) < 0.3
    tables.append(
        TableData(
            "workshops",
            {
                "code": [f"W{i + 1:05d}" for i in range(workshops)],
                "name": [
                    f"常熟市{geo.TOWNS[t].name}{vocab.FIRM_WORDS[int(rng.integers(len(vocab.FIRM_WORDS)))]}"
                    f"{vocab.WORKSHOP_KINDS[fam_codes[w_fams[i][0]]]}"
                    for i, t in enumerate(w_town.tolist())
                ],
                "town": [geo.TOWNS[t].name for t in w_town],
                "lon": w_lon,
                "lat": w_lat,
                "workers": workers,
                "quality": quality,
                "reliability": reliability,
                "active": [True] * workshops,
                "contact_phone": _phones(seed, 1, workshops),
            },
        )
    )

    cap_ws: list[int] = []
    cap_fam: list[int] = []
    cap_share: list[float] = []
    for w, fams in enumerate(w_fams):
        shares = {1: [1.0], 2: [0.7, 0.3], 3: [0.6, 0.25, 0.15]}.get(len(fams)) or [1.0 / len(fams)] * len(
            fams
        )
        for f, sh in zip(fams, shares, strict=True):
            cap_ws.append(w)
            cap_fam.append(f)
            cap_share.append(sh)
    n_cap = len(cap_ws)
    c_ws = np.repeat(np.array(cap_ws, dtype=np.int64), HORIZON_DAYS)
    c_fam = np.repeat(np.array(cap_fam, dtype=np.int64), HORIZON_DAYS)
    c_share = np.repeat(np.array(cap_share), HORIZON_DAYS)
    c_day = np.tile(np.arange(HORIZON_DAYS), n_cap)
    days = [day + dt.timedelta(days=d) for d in range(HORIZON_DAYS)]
    is_sunday = np.array([d.weekday() == 6 for d in days])[c_day]
    open_ = ~(rests_sunday[c_ws] & is_sunday)
    attendance = rng.uniform(0.85, 1.0, len(c_ws))
    regular = np.where(open_, np.round(workers[c_ws] * 480 * c_share * attendance), 0).astype(np.int64)
    overtime = np.where(open_, np.round(workers[c_ws] * 150 * c_share * rng.uniform(0.5, 1.0, len(c_ws))), 0)
    premium = np.maximum(np.round(rate[c_ws] * 0.5 * rng.uniform(0.9, 1.1, len(c_ws))), 1).astype(np.int64)
    tables.append(
        TableData(
            "workshop_capacity",
            {
                "workshop_id": c_ws,
                "day": [days[d] for d in c_day.tolist()],
                "process_family_id": c_fam,
                "regular_minutes": regular,
                "overtime_minutes": overtime.astype(np.int64),
                "overtime_premium_fen_per_minute": premium,
            },
            refs={"workshop_id": "workshops", "process_family_id": "process_families"},
            with_id=False,
        )
    )

    fam_workshops = [
        np.array([w for w in range(workshops) if f in w_fams[w]], dtype=np.int64)
        for f in range(len(fam_codes))
    ]
    # A hit is farmed out to as many workshops as its minutes need: enough of them that one day of their
    # regular minutes in its family covers the whole day's demand for the style 1.5 times over, not a fixed
    # handful (with one, a belt-sized day left a third of the hits' orders with nowhere to be made).
    fam_minutes = np.bincount(
        cap_fam,
        weights=workers[np.array(cap_ws, dtype=np.int64)] * 480.0 * np.array(cap_share),
        minlength=len(fam_codes),
    )
    fam_per_workshop = fam_minutes / np.maximum([len(c) for c in fam_workshops], 1)
    # a style a host may feature is ready for a stream's share of the day (twice the average stream's)
    share = style_weight.copy()
    n_streams = stream_count(merchants)
    share[stream_candidates(style_weight, n_streams)] += 2.0 * STREAM_SHARE / n_streams
    style_day_minutes = orders * UNITS_PER_ORDER * share * minutes
    needed = np.ceil(1.5 * style_day_minutes / np.maximum(fam_per_workshop[style_fam], 1.0)).astype(np.int64)
    q_ws: list[IntArray] = []
    q_style: list[IntArray] = []
    for s in range(n_styles):
        cands = fam_workshops[st_family[s]]
        k = min(len(cands), max(2 + int(rng.poisson(4.0)), int(needed[s])))
        chosen = rng.choice(cands, size=k, replace=False)
        q_ws.append(chosen)
        q_style.append(np.full(k, s, dtype=np.int64))
    qw = np.concatenate(q_ws)
    qs = np.concatenate(q_style)
    unit_cost = np.round(
        minutes[qs] * rate[qw] * rng.uniform(0.9, 1.15, len(qw)) + rng.uniform(50, 300, len(qw))
    )
    tables.append(
        TableData(
            "qualifications",
            {"workshop_id": qw, "style_id": qs, "unit_cost_fen": unit_cost.astype(np.int64)},
            refs={"workshop_id": "workshops", "style_id": "styles"},
            with_id=False,
        )
    )

    # --- shared warehouses and stock -----------------------------------------------------------------------
    rng = _rng(seed, 5)
    h_town = _pick_towns(rng, warehouses, [t.warehouses for t in geo.TOWNS])
    h_lon, h_lat = _place(rng, h_town, 0.008)
    # Sized for the lines the day ships from stock (about two thirds), with headroom.
    h_share = rng.lognormal(0.0, 0.5, warehouses)
    h_share /= h_share.sum()
    h_capacity = np.maximum(np.round(orders * UNITS_PER_ORDER * 0.7 * 1.4 * h_share / 100.0) * 100, 500)
    tables.append(
        TableData(
            "shared_warehouses",
            {
                "code": [f"WH{i + 1:03d}" for i in range(warehouses)],
                "name": [
                    f"常熟{geo.TOWNS[t].name}共享云仓{i + 1}号仓" for i, t in enumerate(h_town.tolist())
                ],
                "town": [geo.TOWNS[t].name for t in h_town],
                "lon": h_lon,
                "lat": h_lat,
                "daily_handling_capacity": h_capacity.astype(np.int64),
                "handling_fen_per_line": rng.integers(60, 181, warehouses),
                "contact_phone": _phones(seed, 2, warehouses),
            },
        )
    )
    # Each merchant keeps stock in a home warehouse, some also in a second one.
    home = rng.choice(warehouses, size=(merchants, 2), p=h_share)
    expected = orders * UNITS_PER_ORDER * sku_share  # units a day
    stocked = rng.random(skus) < 0.08 + 0.92 * expected / (expected + 4.0)
    cover = rng.lognormal(np.log(0.8), 0.6, skus)  # days of demand on the shelf
    on_hand = rng.poisson(expected * cover) + rng.integers(0, 12, skus)
    keep = stocked & (on_hand > 0)
    split = (
        keep & (rng.random(skus) < 0.25) & (home[sku_merchant, 0] != home[sku_merchant, 1]) & (on_hand > 1)
    )
    first_part = np.where(split, np.maximum(on_hand * rng.uniform(0.4, 0.8, skus), 1), on_hand).astype(
        np.int64
    )
    s1 = np.flatnonzero(keep)
    s2 = np.flatnonzero(split)
    st_sku = np.concatenate([s1, s2])
    st_wh = np.concatenate([home[sku_merchant[s1], 0], home[sku_merchant[s2], 1]]).astype(np.int64)
    st_qty = np.concatenate([first_part[s1], on_hand[s2] - first_part[s2]]).astype(np.int64)
    tables.append(
        TableData(
            "stock",
            {
                "warehouse_id": st_wh,
                "owner_id": sku_merchant[st_sku],
                "sku_id": st_sku,
                "on_hand": st_qty,
                "reserved": np.zeros(len(st_sku), dtype=np.int64),
            },
            refs={"warehouse_id": "shared_warehouses", "owner_id": "merchants", "sku_id": "skus"},
            with_id=False,
        )
    )

    # --- couriers, their points and price tables -----------------------------------------------------------
    rng = _rng(seed, 6)
    codes = [c for c, _ in vocab.COURIERS]
    tables.append(TableData("couriers", {"code": codes, "name": [n for _, n in vocab.COURIERS]}))
    p_courier: list[int] = []
    p_town: list[int] = []
    p_quota: list[int] = []
    p_cutoff: list[dt.time] = []
    p_van: list[int] = []
    p_code: list[str] = []
    town_w = [t.workshops + t.warehouses for t in geo.TOWNS]
    for c, code in enumerate(codes):
        tongda = code in TONGDA_FACTOR and code != "EMS"
        n_points = max(1, round(orders / 600_000)) + (2 if tongda else 1)
        towns = _pick_towns(rng, n_points, town_w)
        quota = COURIER_SHARE[code] * orders * 1.25 / n_points
        for k, t in enumerate(towns.tolist()):
            p_courier.append(c)
            p_town.append(t)
            p_quota.append(max(200, int(round(quota * float(rng.uniform(0.8, 1.2)) / 100.0) * 100)))
            lo, hi = (17 * 60 + 30, 20 * 60 + 30) if tongda else (19 * 60, 21 * 60)
            minute = int(rng.integers(lo // 15, hi // 15 + 1)) * 15
            p_cutoff.append(dt.time(minute // 60, minute % 60))
            vans = (600, 1000, 1500, 2500, 3000) if tongda else (300, 500, 800)
            p_van.append(int(rng.choice(vans)))
            p_code.append(f"{code}-CS{k + 1:02d}")
    p_lon, p_lat = _place(rng, np.array(p_town, dtype=np.int64), 0.006)
    tables.append(
        TableData(
            "courier_points",
            {
                "courier_id": np.array(p_courier, dtype=np.int64),
                "code": p_code,
                "town": [geo.TOWNS[t].name for t in p_town],
                "lon": p_lon,
                "lat": p_lat,
                "daily_quota": p_quota,
                "cutoff": p_cutoff,
                "van_capacity": p_van,
            },
            refs={"courier_id": "couriers"},
        )
    )
    pr_courier: list[int] = []
    pr_province: list[str] = []
    pr_first: list[int] = []
    pr_add: list[int] = []
    for c, code in enumerate(codes):
        for prov in geo.PROVINCES:
            first_kg, add = courier_price_fen(code, prov)
            noise = float(rng.uniform(0.96, 1.04))
            pr_courier.append(c)
            pr_province.append(prov.code)
            pr_first.append(int(round(first_kg * noise / 10.0) * 10))
            pr_add.append(int(round(add * noise / 10.0) * 10))
    tables.append(
        TableData(
            "courier_prices",
            {
                "courier_id": np.array(pr_courier, dtype=np.int64),
                "province": pr_province,
                "first_weight_g": [1000] * len(pr_courier),
                "first_fen": pr_first,
                "additional_fen_per_kg": pr_add,
            },
            refs={"courier_id": "couriers"},
            with_id=False,
        )
    )

    return Master(
        tables=tables,
        sku_weight=sku_share,
        sku_style=sku_style,
        sku_merchant=sku_merchant,
        style_merchant=style_merchant,
        style_first_sku=style_first_sku,
        style_nskus=style_nskus,
        style_weight=style_weight,
        merchant_first_sku=merchant_first_sku,
        merchant_nskus=merchant_nskus,
        shop_merchant=shop_merchant,
        shop_platform=shop_platform,
        shop_weight=shop_weight,
        merchant_first_shop=merchant_first_shop,
    )


def _phones(seed: int, stream: int, n: int) -> list[str]:
    """Mobile numbers for the sites' dispatch desks, from their own random stream (so adding them changed
    nothing else the generator draws)."""
    rng = np.random.default_rng([seed, 900 + stream])
    prefix = rng.choice(np.array([135, 136, 138, 139, 150, 151, 152, 158, 180, 187, 189]), n)
    rest = rng.integers(0, 100_000_000, n)
    return [f"{p}{r:08d}" for p, r in zip(prefix.tolist(), rest.tolist(), strict=True)]


def courier_price_fen(courier: str, province: geo.Province) -> tuple[float, float]:
    """List price from the belt to a province before the seeded ±4 %: (first kilogram, each further one).

    The tongda couriers (ZTO, YTO, Yunda, STO, J&T) charge about ¥2.5–3.5 for the first kilogram within
    Jiangsu, Zhejiang and Shanghai, rising with distance to about ¥15–17 for Xinjiang and Tibet; EMS a third
    more; SF and JD several times as much.
    """
    d = province.km_from_belt
    surcharge = geo.REMOTE_SURCHARGE_FEN.get(province.code, 0)
    if courier == "SF":
        return 1150.0 + 0.45 * d + surcharge, 300.0 + 0.5 * d + surcharge
    if courier == "JD":
        return 1000.0 + 0.40 * d + surcharge, 250.0 + 0.45 * d + surcharge
    f = TONGDA_FACTOR[courier]
    return (250.0 + 0.33 * d + surcharge) * f, (100.0 + 0.22 * d + surcharge / 2) * f
