"""Pulling orders in increments by modified time: window limits, and paging that neither skips nor repeats.

Taobao/Tmall (TOP), JD (JOS) and Pinduoduo list a shop's orders changed in a time window newest first, in
numbered pages, and TOP and PDD warn that paging forward loses orders ("必须采用倒序的分页方式
（从最后一页往回取）才能避免漏单问题"): an order changed while we page gets a new modified time and leaves the
window, every older order moves up one place, and paging forward one of them slides onto a page already read.

So :func:`pull_page` reads a window oldest first and moves through it by *time*, not by page number. The
cursor holds ``lo``: every order modified before ``lo`` has been returned, none at or after it. Each call
lists [lo, end] and reads its last page — the oldest orders. If the newest second on that page is ``m``, every
order modified in [lo, m) is on that page (anything older than ``m`` sorts after it), so exactly those are
returned and ``lo`` becomes ``m``; the orders of second ``m`` are read again next time. Orders only ever
*leave* a window in the past (a change moves them to now), so nothing is skipped, and as nothing before ``lo``
is ever listed again, nothing is repeated. The page size is chosen per call so that the last page is as full
as possible, and the cursor carries the expected total so that one call per page is the rule (an emptied last
page costs one more).

One case needs page numbers: a single second holding more orders than a page (a busy shop, a bulk change).
That second is read backwards page by page, and the cursor remembers up to eight order ids from the top of the
last page read to drop the orders that slid onto the next page when others of that second changed meanwhile.
That is exact while fewer orders of that second change between two page reads than a page holds and than were
remembered; beyond that a few orders of that second may be returned twice — never skipped. Duplicates are
harmless to the application (orders converge on ``updated_at``); skipped orders would not be.

All of this holds when no order can *enter* the window while it is read: the window must end in the past,
``now - lag`` with a lag of a few seconds at least and covering the platform's indexing delay, never now. The
platforms' windows are listed with both ends read as inclusive [U]; the query runs to ``end`` rounded up to a
whole second and results are kept to exactly [start, end), so either reading of the platform's end is safe.

A cursor is short text (at most :data:`MAX_CURSOR_CHARS`), tied to its window: resuming with another window is
an error. :func:`windows` cuts a long span into the windows a platform allows and :func:`pull_all` walks them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import httpx

from integrations import http
from integrations.base import ApiError, AppCredential, CanonicalOrder, IncrementApi


def courier_id(
    credential: AppCredential, courier_code: str, table: Mapping[str, str], extra_key: str, label: str
) -> str:
    """The platform's id for a canonical courier: ``table``, overridden by JSON in
    ``credential.extra[extra_key]``; an unknown courier: a non-retryable ApiError led by ``label``."""
    ids = dict(table)
    override = credential.extra.get(extra_key)
    if override:
        ids.update(json.loads(override))
    try:
        return ids[courier_code]
    except KeyError:
        raise ApiError(
            f"{label} for courier {courier_code!r} (known: {', '.join(sorted(ids))}; "
            f"set extra['{extra_key}'])",
            retryable=False,
            code="unknown_courier",
        ) from None


def shop_token(credential: AppCredential, shop_code: str, name: str) -> str:
    """A shop's token from ``credential.extra``: ``<name>.<shop>`` if present, else ``<name>``."""
    extra = credential.extra
    token = extra.get(f"{name}.{shop_code}") or extra.get(name)
    if not token:
        raise ValueError(
            f"{credential.platform} app {credential.app_key} has no {name} for shop {shop_code}: "
            f"set extra['{name}.{shop_code}'] or extra['{name}']"
        )
    return token


class RouterClient:
    """What the pulled platforms' API clients share: one router URL, a clock for the signed timestamps, a
    page size within the platform's limit, and the shop token each call carries."""

    default_url: str = ""
    max_page_size: int = 100
    default_page_size: int = 100
    token_name: str = "access_token"  # the key of the shop's token in ``credential.extra``

    def __init__(
        self,
        credential: AppCredential,
        client: httpx.Client,
        *,
        url: str | None = None,
        clock: Callable[[], float] = time.time,
        page_size: int | None = None,
    ) -> None:
        page_size = self.default_page_size if page_size is None else page_size
        if not 1 <= page_size <= self.max_page_size:
            raise ValueError(f"page_size must be 1..{self.max_page_size}, got {page_size}")
        self.credential = credential
        self.client = client
        self.url = url or self.default_url
        self.clock = clock
        self.page_size = page_size

    def token(self, shop_code: str) -> str:
        """The shop's token (see :func:`shop_token`)."""
        return shop_token(self.credential, shop_code, self.token_name)


MAX_CURSOR_CHARS = 256  # the application keeps the cursor in a 256-character column
MAX_BOUNDARY_IDS = 8
MAX_REPLANS = 5  # a last page emptied under us is re-planned this often before giving up (retryable)
_VERSION = "r2"
_SECOND = dt.timedelta(seconds=1)

Raw = TypeVar("Raw")


class WindowTooFull(ValueError):
    """The window holds more orders than the platform pages through: pull it in smaller windows."""


@dataclass(frozen=True)
class RawPage(Generic[Raw]):
    """One page as the platform listed it (newest first), with the listing's total at that moment."""

    items: Sequence[Raw]
    total: int


# ``fetch(low, high, page, page_size)``: page ``page`` (1-based) of the orders modified in [low, high]
# (whole seconds), newest first.
Fetch = Callable[[dt.datetime, dt.datetime, int, int], RawPage[Raw]]
# ``key(order)``: the platform's order id and the order's modified time (naive UTC).
Key = Callable[[Raw], tuple[str, dt.datetime]]


def _naive(value: dt.datetime, name: str) -> None:
    if value.tzinfo is not None:
        raise ValueError(f"{name} must be naive UTC, got an aware datetime {value.isoformat()}")


def _floor(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


def _ceil(value: dt.datetime) -> dt.datetime:
    floor = _floor(value)
    return floor if floor == value else floor + _SECOND


def check_window(start: dt.datetime, end: dt.datetime, limit: dt.timedelta, what: str) -> None:
    """ValueError naming the limit if [start, end) is empty, aware, or longer than the platform allows.

    Platforms take whole seconds, so the window as sent — from ``start`` rounded down to ``end`` rounded up —
    is what must fit; :func:`windows` cuts spans that way.
    """
    _naive(start, "start")
    _naive(end, "end")
    if end <= start:
        raise ValueError(f"{what}: the window must end after it starts, got start={start} end={end}")
    if _ceil(end) - _floor(start) > limit:
        raise ValueError(
            f"{what} allows at most {limit} per pull, got {end - start} ({start} to {end}); "
            "cut the span with integrations.increments.windows()"
        )


def windows(
    start: dt.datetime, end: dt.datetime, limit: dt.timedelta
) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut into consecutive windows that each fit ``limit`` in whole seconds."""
    _naive(start, "start")
    _naive(end, "end")
    if limit < _SECOND:
        raise ValueError(f"limit must be at least one second, got {limit}")
    out: list[tuple[dt.datetime, dt.datetime]] = []
    at = start
    while at < end:
        nxt = min(_floor(at) + limit, end)
        if _ceil(nxt) - _floor(at) > limit:  # ``end`` has a fraction: stop at its whole second first
            nxt = _floor(nxt)
        out.append((at, nxt))
        at = nxt
    return out


def pull_all(
    api: IncrementApi, shop_code: str, start: dt.datetime, end: dt.datetime, limit: dt.timedelta
) -> Iterator[CanonicalOrder]:
    """Every order changed in [start, end), window by window and page by page.

    A window too full for the platform to page through (:class:`WindowTooFull`) is halved until it fits.
    """
    pending = windows(start, end, limit)
    pending.reverse()
    while pending:
        w_start, w_end = pending.pop()
        cursor: str | None = None
        try:
            while True:
                page = api.pull(shop_code, w_start, w_end, cursor)
                yield from page.orders
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        except WindowTooFull:
            if cursor is not None or w_end - w_start <= _SECOND:
                raise
            middle = _floor(w_start + (w_end - w_start) / 2)
            if middle <= w_start:
                raise
            pending.extend([(middle, w_end), (w_start, middle)])


def _unix(value: dt.datetime) -> int:
    return math.floor(value.replace(tzinfo=dt.UTC).timestamp())


def _utc(unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PageCursor:
    """Where the pull of one window resumes.

    ``start``/``end`` identify the window as sent: unix seconds, the start rounded down and the end rounded up
    (for whole-second windows exactly the caller's). ``lo``: every order modified before it has been
    returned. ``expected``: the total the listing [lo, end] should have now, if known. When a single second
    overflows a page: ``second`` is that second, ``page`` the next page of it to read (backwards), ``ids`` the
    first orders of the last page read.
    """

    start: int
    end: int
    lo: int
    expected: int | None = None
    second: int | None = None
    page: int = 0
    ids: tuple[str, ...] = ()

    def encode(self) -> str:
        head = "|".join(
            str(v) if v is not None else ""
            for v in (_VERSION, self.start, self.end, self.lo, self.expected, self.second, self.page)
        )
        kept: list[str] = []
        for order_id in self.ids[:MAX_BOUNDARY_IDS]:
            if len(head) + 1 + len(",".join([*kept, order_id])) > MAX_CURSOR_CHARS:
                break
            kept.append(order_id)
        return f"{head}|{','.join(kept)}"

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        parts = text.split("|")
        if len(parts) != 8 or parts[0] != _VERSION:
            raise ValueError(f"not a pull cursor of this adapter: {text[:80]!r}")
        try:
            start, end, lo, page = int(parts[1]), int(parts[2]), int(parts[3]), int(parts[6])
            expected = int(parts[4]) if parts[4] else None
            second = int(parts[5]) if parts[5] else None
        except ValueError:
            raise ValueError(f"malformed pull cursor: {text[:80]!r}") from None
        if second is not None and page < 1:
            raise ValueError(f"malformed pull cursor (page {page}): {text[:80]!r}")
        return cls(start, end, lo, expected, second, page, tuple(i for i in parts[7].split(",") if i))


def _check_id(order_id: str) -> str:
    if not order_id or "," in order_id or "|" in order_id:
        raise ApiError(
            f"the platform returned an unusable order id {order_id!r}", retryable=False, code="bad_id"
        )
    return order_id


def _keys(items: Sequence[Raw], key: Key[Raw]) -> list[tuple[str, int]]:
    keys = [(_check_id(i), _unix(m)) for i, m in (key(item) for item in items)]
    for (_, newer), (_, older) in itertools.pairwise(keys):
        if older > newer:
            # Reading a window oldest first is only right over a newest-first list: refuse anything else.
            raise ApiError(
                "the platform returned a page not sorted newest first by modified time",
                retryable=False,
                code="unsorted_page",
            )
    return keys


def _plan(total: int, page_size: int, max_pages: int | None) -> tuple[int, int]:
    """(page size, page number) of the last page of ``total`` orders, its size chosen to fill it best."""
    if total <= page_size:
        return page_size, 1
    best: tuple[int, int, int] | None = None
    for size in range(page_size, (page_size + 1) // 2 - 1, -1):
        pages = math.ceil(total / size)
        if max_pages is not None and pages > max_pages:
            continue
        last = total - (pages - 1) * size
        if best is None or last > best[0]:
            best = (last, size, pages)
    if best is None:
        raise WindowTooFull(
            f"{total} orders to list: more than the platform pages through ({max_pages} pages of "
            f"{page_size}); pull smaller windows"
        )
    return best[1], best[2]


def pull_page(
    fetch: Fetch[Raw],
    key: Key[Raw],
    start: dt.datetime,
    end: dt.datetime,
    cursor: str | None,
    page_size: int,
    *,
    max_pages: int | None = None,
) -> tuple[list[Raw], str | None]:
    """One page of the orders changed in [start, end), oldest first, and the next cursor (None: done)."""
    hi = _unix(_ceil(end))
    if cursor is None:
        state = PageCursor(_unix(start), _unix(_ceil(end)), _unix(start))
    else:
        state = PageCursor.decode(cursor)
        if (state.start, state.end) != (_unix(start), _unix(_ceil(end))):
            raise ValueError(
                f"this cursor belongs to the window {_utc(state.start)}..{_utc(state.end)}, not "
                f"{start}..{end}: resume a window with the same start and end"
            )
    pager = _Pager(fetch, key, start, end, hi, page_size, max_pages)
    if state.second is not None:
        return pager.within_second(state)
    return pager.oldest(state)


@dataclass
class _Pager(Generic[Raw]):
    fetch: Fetch[Raw]
    key: Key[Raw]
    start: dt.datetime
    end: dt.datetime
    hi: int
    page_size: int
    max_pages: int | None

    def listing(
        self, low: int, high: int, page: int, size: int
    ) -> tuple[list[Raw], list[tuple[str, int]], int]:
        listed = self.fetch(_utc(low), _utc(high), page, size)
        items = list(listed.items)
        return items, _keys(items, self.key), int(listed.total)

    def keep(self, items: list[Raw]) -> list[Raw]:
        return [item for item in items if self.start <= self.key(item)[1] < self.end]

    def after(self, state: PageCursor, lo: int, expected: int | None) -> str | None:
        if _utc(lo) >= self.end or expected == 0:  # nothing left, or only orders at or after ``end``
            return None
        return PageCursor(state.start, state.end, lo, expected).encode()

    def oldest(self, state: PageCursor) -> tuple[list[Raw], str | None]:
        lo, expected = state.lo, state.expected
        for _ in range(MAX_REPLANS):
            if expected is None:
                items, keys, total = self.listing(lo, self.hi, 1, self.page_size)
                if total <= len(items):
                    return self.keep(items), None
                expected = total
            size, page = _plan(expected, self.page_size, self.max_pages)
            items, keys, total = self.listing(lo, self.hi, page, size)
            if total <= len(items) and page == 1:
                return self.keep(items), None
            if not items or page != math.ceil(total / size):
                expected = total  # the listing changed since it was counted: plan again
                if total == 0:
                    return [], None
                continue
            newest = keys[0][1]
            older = [item for item, (_, m) in zip(items, keys, strict=True) if m < newest]
            if older:
                return self.keep(older), self.after(state, newest, total - len(older))
            return self.second(state, newest, total)
        raise ApiError(
            "the window kept changing while its last page was read; try again",
            retryable=True,
            code="unsettled",
        )

    def second(self, state: PageCursor, second: int, total: int) -> tuple[list[Raw], str | None]:
        """Every order of ``second`` (all orders before it are done): one page, or page by page backwards."""
        # [second, second + 1]: with either reading of the platform's end the whole second is listed; orders
        # of the next second, if listed, sort first and are left for later.
        items, keys, listed = self.listing(second, second + 1, 1, self.page_size)
        if listed <= len(items):
            mine = [item for item, (_, m) in zip(items, keys, strict=True) if m == second]
            # ``total`` counted [lo, end] before, so the rest is an upper bound: 0 means nothing is left.
            return self.keep(mine), self.after(state, second + 1, max(total - len(mine), 0))
        page = math.ceil(listed / self.page_size)
        if self.max_pages is not None and page > self.max_pages:
            raise WindowTooFull(
                f"{listed} orders changed within the second {_utc(second)}: more than the platform pages "
                f"through ({self.max_pages} pages of {self.page_size})"
            )
        entering = replace(state, lo=second, expected=None, second=second, page=page, ids=())
        return self.within_second(entering)

    def within_second(self, state: PageCursor) -> tuple[list[Raw], str | None]:
        assert state.second is not None
        second, page, size = state.second, state.page, self.page_size
        items, keys, _ = self.listing(second, second + 1, page, size)
        while not items and page > 1:  # the second emptied under us: the pages below still hold unread orders
            page -= 1
            items, keys, _ = self.listing(second, second + 1, page, size)
        pairs = [(item, k) for item, k in zip(items, keys, strict=True) if k[1] == second]
        remembered = set(state.ids)
        # Orders of this second from the first remembered one on were read before (an order keeps its place
        # among the orders of its second from call to call); the ones before it were not.
        first_read = next((n for n, (_, (i, _)) in enumerate(pairs) if i in remembered), len(pairs))
        fresh = pairs[:first_read]
        out = self.keep([item for item, _ in fresh])
        if page == 1:
            return out, self.after(state, second + 1, None)
        ids = tuple(i for _, (i, _) in fresh) + state.ids
        nxt = replace(state, page=page - 1, ids=ids[:MAX_BOUNDARY_IDS])
        return out, nxt.encode()


def post_form(client: httpx.Client, url: str, form: Mapping[str, str], what: str) -> Mapping[str, Any]:
    """POST a signed form and read the JSON answer; transport faults, 429 and 5xx are retryable ApiErrors."""
    response = http.send(client, client.build_request("POST", url, data=dict(form)), what)
    if response.status_code >= 400:
        raise ApiError(
            f"{what}: HTTP {response.status_code}", retryable=False, code=f"http_{response.status_code}"
        )
    answer: Mapping[str, Any] = http.json_answer(response, what)
    return answer
