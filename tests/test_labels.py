"""Shipping labels (fulfil/dispatch/labels.py), read back from the PDF bytes with a reader written here: pages
and their MediaBox, the text drawn (CID strings decoded as UTF-16), and the barcode's bars decoded with the
Code 128 table of the standard (ISO/IEC 15417), so a wrong string encoded would not read back."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from fulfil.dispatch.labels import Label, label_pdf

# --- a small PDF reader ------------------------------------------------------------------------------------

_OBJ = re.compile(rb"(\d+) 0 obj\s*(.*?)endobj", re.S)
_STREAM = re.compile(rb"^(.*?)stream\r?\n(.*?)\r?\n?endstream", re.S)


def _objects(pdf: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Object number -> (dictionary text, decoded stream or None)."""
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for m in _OBJ.finditer(pdf):
        body = m.group(2)
        s = _STREAM.match(body)
        if s is None:
            out[int(m.group(1))] = (body, None)
            continue
        head, data = s.group(1), s.group(2)
        filters = re.findall(rb"/(ASCII85Decode|FlateDecode)", head)
        for f in filters:
            if f == b"ASCII85Decode":
                data = base64.a85decode(b"<~" + data.strip().removeprefix(b"<~"), adobe=True)
            else:
                data = zlib.decompress(data)
        out[int(m.group(1))] = (head, data)
    return out


def _tokens(content: bytes) -> list[tuple[str, bytes]]:
    """Operands and operators of a content stream; literal strings unescaped."""
    out: list[tuple[str, bytes]] = []
    i, n = 0, len(content)
    while i < n:
        c = content[i : i + 1]
        if c.isspace():
            i += 1
        elif c == b"(":
            depth, i, buf = 1, i + 1, bytearray()
            while True:
                ch = content[i : i + 1]
                if ch == b"\\":
                    nxt = content[i + 1 : i + 2]
                    if nxt.isdigit():
                        m = re.match(rb"[0-7]{1,3}", content[i + 1 : i + 4])
                        assert m is not None
                        buf.append(int(m.group(0), 8) & 0xFF)
                        i += 1 + len(m.group(0))
                        continue
                    buf += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(nxt, nxt)
                    i += 2
                    continue
                if ch == b"(":
                    depth += 1
                elif ch == b")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                buf += ch
                i += 1
            out.append(("str", bytes(buf)))
        elif c in b"[]":
            i += 1
        else:
            m = re.match(rb"/?[^\s()\[\]/<>]+", content[i:])
            assert m is not None, content[i : i + 20]
            tok = m.group(0)
            kind = "name" if tok.startswith(b"/") else "num" if re.fullmatch(rb"-?[\d.]+", tok) else "op"
            out.append((kind, tok))
            i += len(tok)
    return out


@dataclass
class _Page:
    media_box: list[float]
    texts: list[tuple[str, float]] = field(default_factory=list)  # (text, font size)
    filled: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h


def _find(pattern: bytes, text: bytes) -> bytes:
    m = re.search(pattern, text, re.S)
    assert m is not None, pattern
    return m.group(1)


def _pages(pdf: bytes) -> list[_Page]:
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    objs = _objects(pdf)
    cid_fonts = {
        m.group(1).decode()
        for head, _ in objs.values()
        for m in [re.search(rb"/Name /(F\d+) /Subtype /Type0", head)]
        if m is not None
    }
    kids = [
        int(x)
        for head, _ in objs.values()
        if b"/Type /Pages" in head
        for x in re.findall(rb"(\d+) 0 R", _find(rb"/Kids \[(.*?)\]", head))
    ]
    pages = []
    for k in kids:
        head, _ = objs[k]
        assert b"/Type /Page" in head
        box = re.search(rb"/MediaBox \[\s*([^\]]*)\]", head)
        assert box is not None
        page = _Page([float(x) for x in box.group(1).split()])
        content = objs[int(_find(rb"/Contents (\d+) 0 R", head))][1]
        assert content is not None
        font, size, stack = "", 0.0, []
        path: list[tuple[float, float, float, float]] = []
        for kind, tok in _tokens(content):
            if kind != "op":
                stack.append((kind, tok))
                continue
            op = tok.decode()
            if op == "Tf":
                font, size = stack[-2][1].decode().lstrip("/"), float(stack[-1][1])
            elif op == "Tj":
                raw = stack[-1][1]
                page.texts.append(
                    (raw.decode("utf-16-be") if font in cid_fonts else raw.decode("latin-1"), size)
                )
            elif op == "re":
                x, y, w, h = (float(t) for _, t in stack[-4:])
                path.append((x, y, w, h))
            elif op in {"f", "f*", "F"}:
                page.filled += path
                path = []
            elif op in {"n", "S", "s", "B", "B*", "b", "b*"}:
                path = []  # not filled only (a stroked border is no bar)
            stack = []
        pages.append(page)
    count = re.search(rb"/Count (\d+)", next(h for h, _ in objs.values() if b"/Type /Pages" in h))
    assert count is not None and int(count.group(1)) == len(pages)
    return pages


# --- Code 128, from the standard's table -------------------------------------------------------------------

_C128 = [  # bar, space, bar, space, bar, space widths in modules of the values 0..105
    "212222",
    "222122",
    "222221",
    "121223",
    "121322",
    "131222",
    "122213",
    "122312",
    "132212",
    "221213",
    "221312",
    "231212",
    "112232",
    "122132",
    "122231",
    "113222",
    "123122",
    "123221",
    "223211",
    "221132",
    "221231",
    "213212",
    "223112",
    "312131",
    "311222",
    "321122",
    "321221",
    "312212",
    "322112",
    "322211",
    "212123",
    "212321",
    "232121",
    "111323",
    "131123",
    "131321",
    "112313",
    "132113",
    "132311",
    "211313",
    "231113",
    "231311",
    "112133",
    "112331",
    "132131",
    "113123",
    "113321",
    "133121",
    "313121",
    "211331",
    "231131",
    "213113",
    "213311",
    "213131",
    "311123",
    "311321",
    "331121",
    "312113",
    "312311",
    "332111",
    "314111",
    "221411",
    "431111",
    "111224",
    "111422",
    "121124",
    "121421",
    "141122",
    "141221",
    "112214",
    "112412",
    "122114",
    "122411",
    "142112",
    "142211",
    "241211",
    "221114",
    "413111",
    "241112",
    "134111",
    "111242",
    "121142",
    "121241",
    "114212",
    "124112",
    "124211",
    "411212",
    "421112",
    "421211",
    "212141",
    "214121",
    "412121",
    "111143",
    "111341",
    "131141",
    "114113",
    "114311",
    "411113",
    "411311",
    "113141",
    "114131",
    "311141",
    "411131",
    "211412",
    "211214",
    "211232",
]
_VALUE = {p: v for v, p in enumerate(_C128)}
_STOP = "2331112"
START_A, START_B, START_C = 103, 104, 105


def _bars(page: _Page) -> list[tuple[float, float]]:
    """The barcode's bars, (x, width), left to right: the filled rectangles of one baseline and height."""
    rows: dict[tuple[float, float], list[tuple[float, float]]] = {}
    for x, y, w, h in page.filled:
        rows.setdefault((round(y, 3), round(h, 3)), []).append((x, w))
    best = max(rows, key=lambda k: len(rows[k]))
    return sorted(rows[best])


def decode_code128(bars: list[tuple[float, float]]) -> str:
    module = min(w for _, w in bars)
    widths: list[int] = []
    for i, (x, w) in enumerate(bars):
        widths.append(round(w / module))
        if i + 1 < len(bars):
            widths.append(round((bars[i + 1][0] - x - w) / module))
    if (len(widths) - 7) % 6 or "".join(map(str, widths[-7:])) != _STOP:
        raise ValueError("no stop pattern")
    values = [_VALUE["".join(map(str, widths[i : i + 6]))] for i in range(0, len(widths) - 7, 6)]
    start, *data, check = values
    if (start + sum(i * v for i, v in enumerate(data, 1))) % 103 != check:
        raise ValueError("checksum")
    code = {START_A: "A", START_B: "B", START_C: "C"}[start]
    out, shift = [], False
    for v in data:
        now = ("B" if code == "A" else "A") if shift else code
        shift = False
        if now == "C" and v < 100:
            out.append(f"{v:02d}")
        elif now in "AB" and v == 98:
            shift = True
        elif v == 99 and now != "C":
            code = "C"
        elif v == 100 and now != "B":
            code = "B"
        elif v == 101 and now != "A":
            code = "A"
        elif (now == "B" and v < 96) or (now == "A" and v < 64):
            out.append(chr(v + 32))
        elif now == "A" and v < 96:
            out.append(chr(v - 64))
        else:
            raise ValueError(f"value {v} in code set {now}")
    return "".join(out)


# --- the labels ------------------------------------------------------------------------------------------

NAME, PHONE, ADDRESS = "王小明", "13812345678", "江苏省常熟市虞山街道海虞北路88号"
WAYBILLS = ["773012345678901", "SF1402342424270", "JDVA00012345678-1-1", "1234", "abc-XYZ_09 z"]


def _label(waybill: str, **over: Any) -> Label:
    base = Label(
        waybill=waybill,
        courier="中通快递 ZTO",
        sender_site="常熟虞山第三服装加工厂",
        province="广东省",
        city="广州市",
        receiver_name=NAME,
        receiver_phone=PHONE,
        receiver_address=ADDRESS,
        parcel_ref="P-000123",
        order_ref="DY4455667788",
        weight_g=1250,
        ship_by=dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC),
    )
    return dataclasses.replace(base, **over)


@pytest.mark.parametrize("compress", [True, False])
def test_one_page_per_label_each_100_by_150_mm(compress: bool) -> None:
    pages = _pages(label_pdf([_label(w) for w in WAYBILLS], compress=compress))
    assert len(pages) == len(WAYBILLS)
    for page in pages:
        x0, y0, x1, y1 = page.media_box
        assert (x0, y0) == (0.0, 0.0)
        assert x1 == pytest.approx(283.46, abs=0.01)
        assert y1 == pytest.approx(425.20, abs=0.01)


@pytest.mark.parametrize("compress", [True, False])
def test_each_barcode_decodes_to_its_waybill(compress: bool) -> None:
    pages = _pages(label_pdf([_label(w) for w in WAYBILLS], compress=compress))
    assert [decode_code128(_bars(p)) for p in pages] == WAYBILLS
    for page, waybill in zip(pages, WAYBILLS, strict=True):
        assert waybill in [t for t, _ in page.texts], "the human-readable number"
        # the bars fit the page with the standard's quiet zone of 10 modules either side
        bars = _bars(page)
        module = min(w for _, w in bars)
        assert bars[-1][0] + bars[-1][1] - bars[0][0] + 20 * module <= page.media_box[2]


def test_the_decoder_refuses_a_damaged_barcode() -> None:
    bars = _bars(_pages(label_pdf([_label("SF1402342424270")]))[0])
    assert decode_code128(bars) == "SF1402342424270"
    module = min(w for _, w in bars)
    x, w = bars[5]
    damaged = [*bars[:5], (x, w + module), *bars[6:]]  # one bar a module wider
    with pytest.raises((ValueError, KeyError)):
        decode_code128(damaged)


@pytest.mark.parametrize("compress", [True, False])
def test_the_receiver_is_printed_masked_only(compress: bool) -> None:
    pdf = label_pdf([_label("773012345678901")], compress=compress)
    text = " ".join(t for t, _ in _pages(pdf)[0].texts)
    # the masked forms are there, so the search below would have found the real ones
    assert "王**" in text
    assert "138****5678" in text
    assert "江苏****" in text
    for secret in (NAME, "小明", PHONE, PHONE[:7], ADDRESS, "海虞北路"):
        assert secret not in text
        for encoding in ("utf-8", "utf-16-be"):
            assert secret.encode(encoding) not in pdf
            for _, stream in _objects(pdf).values():
                assert stream is None or secret.encode(encoding) not in stream


def test_the_receiver_stays_out_of_logs() -> None:
    shown = repr(_label("773012345678901"))
    assert NAME not in shown and PHONE not in shown and ADDRESS not in shown


def test_every_field_is_printed_and_chinese_uses_the_cid_font() -> None:
    pdf = label_pdf([_label("773012345678901")], compress=False)
    assert b"/BaseFont /STSong-Light" in pdf and b"/Encoding /UniGB-UCS2-H" in pdf
    text = " | ".join(t for t, _ in _pages(pdf)[0].texts)
    for part in (
        "中通快递 ZTO",
        "广东省 广州市",
        "常熟虞山第三服装加工厂",
        "P-000123",
        "DY4455667788",
        "1.25 kg",
        "2026-12-03 18:00",  # 10:00 UTC is 18:00 in China
    ):
        assert part in text, part


def test_a_long_name_is_set_smaller_to_fit() -> None:
    long_site = "常熟市虞山街道某某村第十二组服装加工厂（东区二号厂房三楼）"
    page = _pages(label_pdf([_label("1234", sender_site=long_site)], compress=False))[0]
    size = next(s for t, s in page.texts if t == long_site)
    assert size < 12


def test_the_same_labels_give_the_same_bytes() -> None:
    labels = [_label(w) for w in WAYBILLS]
    assert label_pdf(labels) == label_pdf(labels)


@pytest.mark.parametrize("waybill", ["", "SF12345中", "A" * 41, "tab\there"])
def test_a_waybill_code_128_cannot_carry_is_refused_naming_the_label(waybill: str) -> None:
    with pytest.raises(ValueError, match="label 1: waybill"):
        label_pdf([_label("1234"), _label(waybill)])


def test_no_labels_is_an_error() -> None:
    with pytest.raises(ValueError, match="no labels"):
        label_pdf([])
