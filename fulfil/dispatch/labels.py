"""Printable shipping labels: one 100 x 150 mm PDF page per parcel, the waybill number as a Code 128 barcode.

The receiver is given as stored and masked here (:func:`fulfil.pii.mask_name`, ``mask_phone``,
``mask_address``), so no caller can print a full name, phone or address: a label lies on a parcel in public
for days. The masks are idempotent, so an already masked receiver prints the same.

Chinese text uses reportlab's built-in CID font ``STSong-Light``, which needs no font file (PDF viewers and
label printers' drivers bring the glyphs). The output is byte-for-byte the same for the same labels.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm as _mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from fulfil.pii import mask_address, mask_name, mask_phone

MM: float = float(_mm)  # points per millimetre
PAGE_WIDTH = 100 * MM
PAGE_HEIGHT = 150 * MM
CJK = "STSong-Light"
CODE_FONT = "Helvetica-Bold"
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")  # China keeps one offset all year
MAX_WAYBILL = 40

_MARGIN = 2 * MM
# label printers are mostly 203 dpi: bars a whole number of dots wide print evenly, so scanners read them
_DOT = 25.4 * MM / 203
_MAX_BAR = 4 * _DOT
_MIN_BAR = 2 * _DOT
_BAR_HEIGHT = 20 * MM


@dataclass(frozen=True)
class Label:
    """One parcel's label. The receiver fields hold the stored values; they are masked when printed."""

    waybill: str  # the courier's tracking number (printable ASCII)
    courier: str  # as printed, e.g. "中通快递 ZTO"
    sender_site: str  # the workshop or warehouse the parcel leaves from
    province: str
    city: str
    receiver_name: str = field(repr=False)
    receiver_phone: str = field(repr=False)
    receiver_address: str = field(repr=False)
    parcel_ref: str
    order_ref: str
    weight_g: int
    ship_by: dt.datetime  # an aware time prints in China time; a naive one as given


_font_ready = False


def _register_font() -> None:
    global _font_ready
    if not _font_ready:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK))
        _font_ready = True


def _check(i: int, label: Label) -> None:
    w = label.waybill
    if not w or len(w) > MAX_WAYBILL or not all(32 <= ord(ch) < 127 for ch in w):
        raise ValueError(f"label {i}: waybill {w!r} is not 1..{MAX_WAYBILL} printable ASCII characters")
    if label.weight_g < 0:
        raise ValueError(f"label {i}: weight {label.weight_g} g is negative")


def _text(c: Canvas, x: float, y: float, text: str, font: str, size: float, width: float) -> None:
    """Draw ``text`` at ``size``, smaller where it would run past ``width`` (long site names, say)."""
    need = pdfmetrics.stringWidth(text, font, size)
    if need > width:
        size = max(size * width / need, 4.0)
    c.setFont(font, size)
    c.drawString(x, y, text)


def _barcode(c: Canvas, waybill: str, top: float) -> None:
    code = Code128(waybill, barWidth=1.0, barHeight=_BAR_HEIGHT, quiet=0, humanReadable=0)
    modules = float(code.width)
    # the symbol needs a quiet zone of 10 modules either side, inside the border
    room = PAGE_WIDTH - 2 * _MARGIN - 2 * MM
    bar = room / (modules + 20)
    if bar >= _MIN_BAR:
        bar = min(_MAX_BAR, bar // _DOT * _DOT)
    code.barWidth = bar
    code.drawOn(c, (PAGE_WIDTH - modules * bar) / 2, top - _BAR_HEIGHT)


def _when(t: dt.datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(CHINA)
    return t.strftime("%Y-%m-%d %H:%M")


def _page(c: Canvas, label: Label) -> None:
    left = _MARGIN + 2 * MM
    inner = PAGE_WIDTH - 2 * left

    def y(from_top_mm: float) -> float:
        return PAGE_HEIGHT - from_top_mm * MM

    def rule(from_top_mm: float) -> None:
        c.line(_MARGIN, y(from_top_mm), PAGE_WIDTH - _MARGIN, y(from_top_mm))

    c.setLineWidth(0.8)
    c.rect(_MARGIN, _MARGIN, PAGE_WIDTH - 2 * _MARGIN, PAGE_HEIGHT - 2 * _MARGIN, stroke=1, fill=0)

    _text(c, left, y(11), label.courier, CJK, 16, inner * 0.6)
    ship_by = "发货 " + _when(label.ship_by)
    _text(c, left + inner * 0.62, y(10), ship_by, CJK, 9, inner * 0.38)
    rule(15)

    _barcode(c, label.waybill, y(18))
    c.setFont(CODE_FONT, 13)
    c.drawCentredString(PAGE_WIDTH / 2, y(44), label.waybill)
    rule(48)

    _text(c, left, y(52.5), "目的地", CJK, 8, inner)
    _text(c, left, y(62), f"{label.province} {label.city}", CJK, 22, inner)
    rule(66)

    _text(c, left, y(70.5), "收件人", CJK, 8, inner)
    receiver = f"{mask_name(label.receiver_name)}  {mask_phone(label.receiver_phone)}"
    _text(c, left, y(78.5), receiver, CJK, 14, inner)
    _text(c, left, y(87), mask_address(label.receiver_address), CJK, 11, inner)
    rule(92)

    _text(c, left, y(96.5), "寄件", CJK, 8, inner)
    _text(c, left, y(103.5), label.sender_site, CJK, 12, inner)
    rule(108)

    _text(c, left, y(115), f"包裹 {label.parcel_ref}", CJK, 10, inner)
    _text(c, left, y(122), f"订单 {label.order_ref}", CJK, 10, inner)
    _text(c, left, y(129), f"重量 {label.weight_g / 1000:.2f} kg", CJK, 10, inner)
    _text(c, left, y(136), f"发货时效 {_when(label.ship_by)}", CJK, 10, inner)


def label_pdf(labels: Sequence[Label], *, compress: bool = True) -> bytes:
    """One 100 x 150 mm page per label, in order. ``compress=False`` leaves the page streams readable."""
    if not labels:
        raise ValueError("no labels to print")
    for i, label in enumerate(labels):
        _check(i, label)
    _register_font()
    out = io.BytesIO()
    c = Canvas(out, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), pageCompression=int(compress), invariant=1)
    c.setTitle("Shipping labels")
    c.setAuthor("fulfil")
    for label in labels:
        _page(c, label)
        c.showPage()
    c.save()
    return out.getvalue()
