"""The day's orders: when they are paid, what they buy, where they go, who receives them.

Arrivals follow a diurnal curve plus live streams: each stream features one hit style from one merchant's
Douyin (or other) shop, with sharp rises when the host drops the item and exponential decays after. Orders are
counted per minute of the belt's local day (one multinomial draw over the whole day), and each minute's
orders are drawn from a generator seeded by (seed, minute) alone — so the data depend on the seed and the
parameters, never on the chunk size, and any chunk can be generated without the ones before it.

Times are kept as integer microseconds since local midnight of the belt's day; the loader turns them into
naive UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from fulfil.belt import geo, vocab
from fulfil.belt.master import STREAM_SHARE, Master, stream_candidates, stream_count

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MINUTES = 24 * 60
MINUTE_US = 60_000_000
DAY_US = 24 * 3600 * 1_000_000
SHIP_BY_US = 48 * 3600 * 1_000_000  # Douyin's standard promise: 48 h from payment
PRESALE_SHARE = 0.03
PRESALE_DAYS = (3, 15)  # a pre-sale order ships by the end of a local day 3 to 15 days after payment
LINES_P = np.array([0.82, 0.13, 0.05])  # orders with 1, 2, 3 lines
QTY_P = np.array([0.86, 0.10, 0.025, 0.01, 0.005])  # quantity 1..5 per line

# Hourly shape of ordinary (non-stream) demand in local time, 00:00 .. 24:00.
_DIURNAL = np.array(
    [0.55, 0.35, 0.20, 0.12, 0.10, 0.10, 0.15, 0.30, 0.50, 0.70, 0.85, 0.90, 1.00,
     0.95, 0.85, 0.85, 0.85, 0.90, 1.00, 1.20, 1.40, 1.50, 1.30, 0.90, 0.55]
)  # fmt: skip

_ORDERS_SECTION = 100
_PLAN_SECTION = 7


@dataclass(frozen=True)
class Stream:
    """One live stream: who runs it, what it features, when it peaks."""

    shop: int  # row position in platform_shops
    style: int  # featured style, row position in styles
    start_minute: int
    end_minute: int
    spikes: tuple[int, ...]  # minutes of the peaks (item drops)
    share: float  # of the day's orders


@dataclass
class OrderChunk:
    """Orders ``first`` .. ``first + n - 1`` of the day (in payment order), column-wise."""

    first: int
    paid_us: IntArray  # since local midnight of the day
    created_us: IntArray
    ship_by_us: IntArray
    presale: npt.NDArray[np.bool_]
    stream: IntArray  # 0 ordinary demand, k > 0 stream k
    shop: IntArray
    merchant: IntArray
    province: IntArray  # index into geo.PROVINCES
    city: IntArray  # index into CITIES
    receiver: dict[str, IntArray]
    line_order: IntArray  # chunk-local order index of each line, non-decreasing
    line_sku: IntArray
    line_qty: IntArray

    @property
    def n(self) -> int:
        return len(self.paid_us)


def _cities() -> tuple[list[str], IntArray, FloatArray]:
    names: list[str] = []
    prov: list[int] = []
    key: list[float] = []
    for p, province in enumerate(geo.PROVINCES):
        w = np.array([c[1] for c in province.cities])
        cum = np.cumsum(w) / w.sum()
        cum[-1] = 1.0
        names += [c[0] for c in province.cities]
        prov += [p] * len(w)
        key += (p + cum).tolist()
    return names, np.array(prov, dtype=np.int64), np.array(key)


CITIES, CITY_PROVINCE, _CITY_KEY = _cities()


def _cdf(w: FloatArray) -> FloatArray:
    c = np.cumsum(w)
    c /= c[-1]
    c[-1] = 1.0
    return c


def _grouped_key(groups: IntArray, weights: FloatArray, n_groups: int) -> FloatArray:
    """Keys for drawing a row within its group with one ``searchsorted``: group + cumulative share in group.

    Rows must be sorted by group; drawing ``searchsorted(key, g + u, "right")`` with u in [0, 1) picks a row
    of group g with probability proportional to its weight.
    """
    totals = np.bincount(groups, weights=weights, minlength=n_groups)
    csum = np.cumsum(weights)
    start = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    within = (csum - start[groups]) / totals[groups]
    last = np.r_[groups[1:] != groups[:-1], True]
    within[last] = 1.0
    key: FloatArray = groups + within
    return key


class OrderPlan:
    """Everything the day's orders are drawn from; :meth:`chunks` yields them in payment order."""

    def __init__(self, master: Master, *, seed: int, day: dt.date, orders: int) -> None:
        self.master = master
        self.seed = seed
        self.day = day
        self.orders = orders
        rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(_PLAN_SECTION,)))
        m = master
        n_merchants = len(m.merchant_first_shop)
        self.sku_cdf = _cdf(m.sku_weight)
        self.shop_key = _grouped_key(m.shop_merchant, m.shop_weight, n_merchants)
        self.merchant_sku_key = _grouped_key(m.sku_merchant, m.sku_weight, n_merchants)
        pop = np.array([p.population for p in geo.PROVINCES], dtype=np.float64)
        self.province_cdf = _cdf(pop)
        # Platform order ids look random but are unique: a bijection of the day's order number mod 10^13.
        self.order_id_salt = int(rng.integers(10**13))
        self.streams = self._plan_streams(rng, n_merchants)
        self.intensity = self._intensity(rng)
        lam = self.intensity.sum(axis=0)
        self.per_minute = rng.multinomial(orders, lam / lam.sum()).astype(np.int64)

    def _plan_streams(self, rng: np.random.Generator, n_merchants: int) -> list[Stream]:
        m = self.master
        n_streams = stream_count(n_merchants)
        # Hosts feature hits: draw from the most popular styles, weighted by popularity.
        top = stream_candidates(m.style_weight, n_streams)
        styles = rng.choice(
            top,
            size=n_streams,
            replace=len(top) < n_streams,
            p=m.style_weight[top] / m.style_weight[top].sum(),
        )
        afternoon = min(2, n_streams // 3)
        weights = rng.lognormal(0.0, 0.5, n_streams)
        weights[:afternoon] *= 0.5  # evening streams draw the bigger audiences
        shares = STREAM_SHARE * weights / weights.sum()
        streams: list[Stream] = []
        for k in range(n_streams):
            style = int(styles[k])
            merchant = int(m.style_merchant[style])
            shops = np.flatnonzero(m.shop_merchant == merchant)
            # Douyin first, then Kuaishou (PLATFORMS order), then whatever shop the merchant has.
            shop = int(shops[np.argmin(m.shop_platform[shops])])
            lo, hi = (13 * 60 + 30, 17 * 60) if k < afternoon else (19 * 60, 22 * 60 + 30)
            start = int(rng.integers(lo, hi + 1))
            duration = int(rng.integers(90, 181))
            n_spikes = min(1 + int(rng.poisson(1.0)), 3)
            spikes = tuple(sorted(int(start + rng.uniform(0, 0.7) * duration) for _ in range(n_spikes)))
            streams.append(
                Stream(shop, style, start, min(start + duration, MINUTES), spikes, float(shares[k]))
            )
        return streams

    def _intensity(self, rng: np.random.Generator) -> FloatArray:
        """Expected orders per minute of each source: row 0 ordinary demand, row k stream k."""
        t = np.arange(MINUTES, dtype=np.float64)
        base = np.interp(t / 60.0, np.arange(25), _DIURNAL)
        rows = [base / base.sum() * (1.0 - STREAM_SHARE)]
        for s in self.streams:
            plateau = ((t >= s.start_minute) & (t < s.end_minute)).astype(np.float64)
            spikes = np.zeros(MINUTES)
            for peak in s.spikes:
                rise = float(rng.uniform(2.0, 4.0))
                tau = float(rng.uniform(6.0, 15.0))
                amp = float(rng.lognormal(0.0, 0.4))
                up = (t >= peak - rise) & (t < peak)
                spikes[up] += amp * (t[up] - (peak - rise)) / rise
                down = t >= peak
                spikes[down] += amp * np.exp(-(t[down] - peak) / tau)
            curve = 0.25 * plateau / plateau.sum() + 0.75 * spikes / spikes.sum()
            rows.append(curve * s.share)
        return np.vstack(rows)

    # --- chunks -------------------------------------------------------------------------------------------

    def chunks(self, chunk_orders: int) -> Iterator[OrderChunk]:
        """Orders in payment order, whole minutes at a time, about ``chunk_orders`` per chunk."""
        first = 0
        pending: list[int] = []
        pending_n = 0
        for minute in range(MINUTES):
            c = int(self.per_minute[minute])
            if c == 0:
                continue
            pending.append(minute)
            pending_n += c
            if pending_n >= chunk_orders:
                yield self._chunk(first, pending)
                first += pending_n
                pending, pending_n = [], 0
        if pending:
            yield self._chunk(first, pending)

    def _chunk(self, first: int, minutes: list[int]) -> OrderChunk:
        blocks = [self._minute(m) for m in minutes]
        sizes = np.array([len(b["paid_us"]) for b in blocks], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])

        def cat(key: str) -> Any:
            return np.concatenate([b[key] for b in blocks])

        line_order = np.concatenate([b["line_order"] + off for b, off in zip(blocks, offsets, strict=True)])
        return OrderChunk(
            first=first,
            paid_us=cat("paid_us"),
            created_us=cat("created_us"),
            ship_by_us=cat("ship_by_us"),
            presale=cat("presale"),
            stream=cat("stream"),
            shop=cat("shop"),
            merchant=cat("merchant"),
            province=cat("province"),
            city=cat("city"),
            receiver={k: np.concatenate([b["r_" + k] for b in blocks]) for k in _RECEIVER_FIELDS},
            line_order=line_order,
            line_sku=cat("line_sku"),
            line_qty=cat("line_qty"),
        )

    def _minute(self, minute: int) -> dict[str, Any]:
        n = int(self.per_minute[minute])
        m = self.master
        rng = np.random.default_rng(
            np.random.SeedSequence(entropy=self.seed, spawn_key=(_ORDERS_SECTION, minute))
        )
        lam = self.intensity[:, minute]
        source = np.repeat(np.arange(len(lam)), rng.multinomial(n, lam / lam.sum()))
        rng.shuffle(source)
        paid = minute * MINUTE_US + np.sort(rng.integers(0, MINUTE_US, n))

        # First line: ordinary demand follows SKU popularity; a stream sells its featured style.
        u = rng.random(n)
        sku = np.minimum(np.searchsorted(self.sku_cdf, u, side="right"), len(self.sku_cdf) - 1)
        shop = np.searchsorted(self.shop_key, m.sku_merchant[sku] + rng.random(n), side="right")
        for k in np.unique(source[source > 0]).tolist():
            s = self.streams[k - 1]
            sel = source == k
            lo, cnt = int(m.style_first_sku[s.style]), int(m.style_nskus[s.style])
            cdf = _cdf(m.sku_weight[lo : lo + cnt])
            sku[sel] = lo + np.minimum(np.searchsorted(cdf, u[sel], side="right"), cnt - 1)
            shop[sel] = s.shop
        merchant = m.sku_merchant[sku]

        province = np.minimum(
            np.searchsorted(self.province_cdf, rng.random(n), side="right"), len(geo.PROVINCES) - 1
        )
        city = np.searchsorted(_CITY_KEY, province + rng.random(n), side="right")
        presale = rng.random(n) < PRESALE_SHARE
        presale_days = rng.integers(PRESALE_DAYS[0], PRESALE_DAYS[1] + 1, n)
        ship_by = np.where(presale, (presale_days + 1) * DAY_US - 1_000_000, paid + SHIP_BY_US)
        # Stream buyers pay within seconds of ordering; others take a few minutes.
        created = paid - (rng.exponential(1.0, n) * np.where(source > 0, 40e6, 240e6)).astype(np.int64)

        # Further lines: another colour or size of the same style, or another of the merchant's SKUs.
        n_lines = rng.choice(3, size=n, p=LINES_P) + 1
        line_order = np.repeat(np.arange(n, dtype=np.int64), n_lines)
        line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
        first_sku = sku[line_order]
        style = m.sku_style[first_sku]
        style_lo = m.style_first_sku[style]
        same_style = style_lo + (first_sku - style_lo + line_no) % m.style_nskus[style]
        other = np.searchsorted(
            self.merchant_sku_key, merchant[line_order] + rng.random(len(line_order)), "right"
        )
        line_sku = np.where(
            line_no == 0, first_sku, np.where(rng.random(len(line_order)) < 0.5, same_style, other)
        )
        line_qty = rng.choice(len(QTY_P), size=len(line_order), p=QTY_P) + 1
        # The same SKU twice in one order is one line with the quantities added.
        key, inverse = np.unique(line_order * len(self.sku_cdf) + line_sku, return_inverse=True)
        line_qty = np.bincount(inverse.ravel(), weights=line_qty).astype(np.int64)
        line_order, line_sku = key // len(self.sku_cdf), key % len(self.sku_cdf)

        out: dict[str, Any] = {
            "paid_us": paid.astype(np.int64),
            "created_us": created,
            "ship_by_us": ship_by.astype(np.int64),
            "presale": presale,
            "stream": source.astype(np.int64),
            "shop": shop.astype(np.int64),
            "merchant": merchant,
            "province": province.astype(np.int64),
            "city": city.astype(np.int64),
            "line_order": line_order,
            "line_sku": line_sku,
            "line_qty": line_qty,
        }
        out.update({"r_" + k: v for k, v in _draw_receivers(rng, n).items()})
        return out

    def platform_order_ids(self, chunk: OrderChunk) -> npt.NDArray[np.bytes_]:
        """19-digit platform order ids: the day (yymmdd), then a scrambled order number unique in the day."""
        g = np.arange(chunk.first, chunk.first + chunk.n, dtype=np.int64)
        x = (g * 7_777_777_777 + self.order_id_salt) % 10**13
        digits = (x[:, None] // 10 ** np.arange(12, -1, -1, dtype=np.int64)) % 10 + 48
        prefix = np.frombuffer(self.day.strftime("%y%m%d").encode(), dtype=np.uint8)
        mat = np.hstack([np.broadcast_to(prefix, (chunk.n, 6)), digits.astype(np.uint8)])
        return np.ascontiguousarray(mat).view("S19").ravel()


# --- receivers -------------------------------------------------------------------------------------------

_RECEIVER_FIELDS = (
    "surname", "given1", "given2", "prefix", "phone_a", "phone_b", "road", "number", "estate", "building",
    "unit", "floor", "door",
)  # fmt: skip


def _draw_receivers(rng: np.random.Generator, n: int) -> dict[str, IntArray]:
    surname_cdf = _cdf(1.0 / (np.arange(len(vocab.SURNAMES), dtype=np.float64) + 3.0))
    given2 = rng.integers(0, len(vocab.GIVEN_CHARS), n)
    given2[rng.random(n) < 0.35] = -1  # a one-character given name
    return {
        "surname": np.searchsorted(surname_cdf, rng.random(n), side="right").astype(np.int64),
        "given1": rng.integers(0, len(vocab.GIVEN_CHARS), n),
        "given2": given2,
        "prefix": rng.integers(0, len(vocab.MOBILE_PREFIXES), n),
        "phone_a": rng.integers(0, 10_000, n),
        "phone_b": rng.integers(0, 10_000, n),
        "road": rng.integers(0, len(vocab.ROADS), n),
        "number": rng.integers(1, 900, n),
        "estate": rng.integers(0, len(vocab.ESTATES), n),
        "building": rng.integers(1, 33, n),
        "unit": rng.integers(1, 7, n),
        "floor": rng.integers(1, 34, n),
        "door": rng.integers(1, 5, n),
    }


@cache
def _receiver_pieces() -> dict[str, npt.NDArray[np.object_]]:
    """Byte pieces that concatenate to ``["name", "phone", "address"]`` (the JSON :class:`Sealer` seals)."""
    vocab.check_json_safe()

    def arr(items: list[bytes]) -> npt.NDArray[np.object_]:
        a = np.empty(len(items), dtype=object)
        a[:] = items
        return a

    return {
        "surname": arr([('["' + s).encode() for s in vocab.SURNAMES]),
        # given2 == -1 picks the last, empty entry
        "given": arr([c.encode() for c in vocab.GIVEN_CHARS] + [b""]),
        "prefix": arr([('", "' + p).encode() for p in vocab.MOBILE_PREFIXES]),
        "num4": arr([f"{i:04d}".encode() for i in range(10_000)]),
        "road": arr([('", "' + r).encode() for r in vocab.ROADS]),
        "number": arr([str(i).encode() for i in range(1000)]),
        "estate": arr([("号" + e).encode() for e in vocab.ESTATES]),
        "building": arr([f"{i}栋".encode() for i in range(40)]),
        "unit": arr([f"{i}单元".encode() for i in range(10)]),
        "floor_door": arr([f'{f}0{d}室"]'.encode() for f in range(40) for d in range(10)]),
    }


def receiver_plaintexts(chunk: OrderChunk) -> list[bytes]:
    """The receivers of a chunk as the JSON bytes :class:`fulfil.pii.Sealer` seals, built from shared
    pieces so that the per-order Python work is one join."""
    p = _receiver_pieces()
    r = chunk.receiver
    cols = np.empty((chunk.n, 12), dtype=object)
    cols[:, 0] = p["surname"][r["surname"]]
    cols[:, 1] = p["given"][r["given1"]]
    cols[:, 2] = p["given"][r["given2"]]
    cols[:, 3] = p["prefix"][r["prefix"]]
    cols[:, 4] = p["num4"][r["phone_a"]]
    cols[:, 5] = p["num4"][r["phone_b"]]
    cols[:, 6] = p["road"][r["road"]]
    cols[:, 7] = p["number"][r["number"]]
    cols[:, 8] = p["estate"][r["estate"]]
    cols[:, 9] = p["building"][r["building"]]
    cols[:, 10] = p["unit"][r["unit"]]
    cols[:, 11] = p["floor_door"][r["floor"] * 10 + r["door"]]
    join = b"".join
    return [join(row) for row in cols.tolist()]
