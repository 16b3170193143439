"""Columnar bulk I/O between numpy arrays and the database: :func:`read_columns` and :func:`write_columns`.

On PostgreSQL both move rows with binary COPY and let numpy build or parse the stream, so that no Python
object is made per value. Reading: ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``; every row of fixed-width
columns has one byte layout (an int16 field count, then per field an int32 length and the big-endian value),
so one structured dtype over the whole buffer decodes it. Writing: the rows are laid out in a structured
array of big-endian fields and sent ``tobytes()`` a few MB at a time with ``COPY ... FROM STDIN``. On SQLite,
the embedded default, both fall back to plain rows (``.all()`` / ``executemany`` in chunks).

What PostgreSQL sees on the wire is decided here, not by the table: a read casts every selected column to
the type its requested dtype stands for (``int64`` -> ``int8``, ``datetime64[D]`` -> ``date`` ...), so the
conversion is the database's cast (e.g. ``numeric`` rounds into an integer, a ``timestamptz`` becomes local
time in the session's ``TimeZone``); a write sends each column in its table type (given in ``types`` or
looked up in the catalogue), and a wrong type is refused by the server, never reinterpreted.

Supported: int2/int4/int8 (``int16/32/64``), float4/float8, bool, date (``datetime64[D]``), timestamp and
timestamptz (``datetime64[us]``; timestamptz as UTC), and text (varchar, char, text, enums).

Conventions
    NULL: written from masked entries of a ``numpy.ma.MaskedArray``, from ``None`` in a list or an object
    array, or from code -1 of a :class:`Categorical`. Read back, by default, as an error
    (:class:`NullValueError`): most callers want plain arrays, and any fill value would be a wrong number;
    with ``nulls="mask"`` every column comes back as a masked array (masked where NULL; the data under the
    mask is 0, 1970-01-01, or None/"" for text). NaT is not NULL: writing it is an error. NaN and ±inf are
    float values, kept as such on PostgreSQL (SQLite stores NaN as NULL).

    Text is variable width, so a row holding text (or a NULL) breaks the fixed layout. Reading, such rows are
    still parsed with numpy (field by field, gathering each field's bytes at the offsets the lengths give),
    but every text value becomes a Python ``str`` one by one: the slow path, meant for small columns.
    Writing, text goes into the structured array as a fixed-width bytes field and one boolean mask over the
    array's bytes drops the unused ones (and the absent values of NULLs). How the bytes are made: from a
    :class:`Categorical` (codes into a few labels) each label is encoded once, no Python per row; a ``str``
    array that is all ASCII is converted as integers; anything else (object arrays, lists, non-ASCII ``str``
    arrays) is encoded value by value, about 0.1 µs a value.

    Integers narrower than the values' dtype (an int64 array into int4) are range-checked before sending:
    binary COPY would otherwise keep the low bytes. PostgreSQL's infinite dates and timestamps, and
    timestamps beyond ``datetime64[us]``'s range, raise on reading.

    Memory, reading: the raw stream of all rows (2 + Σ(4 + width) bytes a row, 50 for four int8) is held
    until it is decoded, next to the arrays made from it. Writing: a chunk of ~4 MB at a time.

    Row order: a query's ORDER BY is kept (the query is wrapped only in a projection that casts).
"""

from __future__ import annotations

import re
import struct
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import pq
from psycopg import sql as pgsql
from sqlalchemy import Connection, Executable, MetaData, Table, bindparam, insert, text
from sqlalchemy import types as satypes
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import SelectBase

Array = npt.NDArray[Any]
Nulls = Literal["raise", "mask"]

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + struct.pack(">ii", 0, 0)  # no flags, no header extension: 19 bytes
_TRAILER = b"\xff\xff"  # a field count of -1
_NEVER = -3  # a size get_copy_data never returns: the fast path's row size once rows stop being alike
_EPOCH_DAYS = 10_957  # PostgreSQL counts dates and timestamps from 2000-01-01, numpy from 1970-01-01
_EPOCH_US = _EPOCH_DAYS * 86_400_000_000
_I32, _I64 = np.iinfo(np.int32), np.iinfo(np.int64)
_CHUNK_BYTES = (
    4 << 20
)  # a COPY payload chunk: big enough to amortise numpy's per-call cost, small temporaries
_SQLITE_CHUNK = 10_000
# what stands in a NULL's place in an object column while it converts (the value is never sent)
_WRITE_FILL: dict[str, Any] = {
    "date": np.datetime64(0, "D"),
    "timestamp": np.datetime64(0, "us"),
    "timestamptz": np.datetime64(0, "us"),
    "bool": False,
}


class ColumnsError(ValueError):
    """The columns asked for or given cannot be moved as they are: the message says what to change."""


class NullValueError(ColumnsError):
    """A NULL was read into a column that was not asked for as masked."""


class CopyFormatError(RuntimeError):
    """The binary COPY stream is not what PostgreSQL documents (or not what the query was cast to)."""


@dataclass(frozen=True)
class _Kind:
    """A PostgreSQL type as binary COPY carries it."""

    pg: str  # the type name, and the cast target when reading
    wire: str  # numpy dtype of the big-endian value; "" for text, which has no fixed width

    @property
    def width(self) -> int:
        return np.dtype(self.wire).itemsize if self.wire else 0


_KINDS = {
    k.pg: k
    for k in (
        _Kind("int2", ">i2"),
        _Kind("int4", ">i4"),
        _Kind("int8", ">i8"),
        _Kind("float4", ">f4"),
        _Kind("float8", ">f8"),
        _Kind("bool", "?"),
        _Kind("date", ">i4"),
        _Kind("timestamp", ">i8"),
        _Kind("timestamptz", ">i8"),
        _Kind("text", ""),
    )
}
_ALIASES = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "varchar": "text",
    "character varying": "text",
    "bpchar": "text",
    "character": "text",
    "char": "text",
    "name": "text",
}


def _kind(pg_type: str, what: str) -> _Kind:
    """The kind for a PostgreSQL type name as the catalogue or a person writes it (``varchar(20)``)."""
    name = re.sub(r"\(.*?\)", "", pg_type).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in _KINDS:
        raise ColumnsError(f"{what}: type {pg_type!r} is not supported (supported: {', '.join(_KINDS)})")
    return _KINDS[name]


# --- connections -----------------------------------------------------------------------------------------


def _sa_connection(session_or_connection: Session | Connection) -> Connection:
    """The SQLAlchemy connection, inside a transaction SQLAlchemy knows about.

    COPY runs on the driver connection underneath; had SQLAlchemy not begun its transaction first, psycopg
    would open one by itself and a later ``commit()`` through SQLAlchemy would have nothing to commit.
    """
    if isinstance(session_or_connection, Session):
        return session_or_connection.connection()
    conn = session_or_connection
    if not conn.in_transaction():
        conn.begin()
    return conn


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise ColumnsError(f"PostgreSQL through psycopg 3 is needed for COPY, not {type(raw).__name__}")
    return raw


def _is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# --- reading ---------------------------------------------------------------------------------------------


def read_columns(
    session_or_connection: Session | Connection,
    select_stmt_or_sql: Executable | str,
    dtypes: Sequence[npt.DTypeLike],
    *,
    nulls: Nulls = "raise",
) -> list[Array]:
    """The result of a query as one numpy array per selected column, converted to ``dtypes``.

    ``dtypes`` are numpy dtypes: ``int16/32/64``, ``float32/64``, ``bool``, ``datetime64[D]`` (date),
    ``datetime64[us]`` (timestamp), ``object`` (text as ``str``) or ``str`` (text as a ``<U`` array). The
    query is a SQLAlchemy SELECT (rendered with its values inline on PostgreSQL, since COPY takes no bind
    parameters) or a SQL string, used as written. NULLs: see the module's conventions.
    """
    if not dtypes:
        raise ColumnsError("no dtypes: name one per selected column")
    wanted = [np.dtype(d) for d in dtypes]
    conn = _sa_connection(session_or_connection)
    if _is_postgresql(conn):
        return _read_copy(conn, select_stmt_or_sql, wanted, nulls)
    return _read_rows(conn, select_stmt_or_sql, wanted, nulls)


def _read_kind(dtype: np.dtype[Any]) -> _Kind:
    """The type each column is cast to on the server, so the wire layout is the one the dtype needs."""
    if dtype.kind in "OU":
        return _KINDS["text"]
    if dtype.kind == "M":
        unit = np.datetime_data(dtype)[0]
        if unit in ("D", "us"):
            return _KINDS["date" if unit == "D" else "timestamp"]
    by_size = {"b": {1: "bool"}, "i": {2: "int2", 4: "int4", 8: "int8"}, "f": {4: "float4", 8: "float8"}}
    name = by_size.get(dtype.kind, {}).get(dtype.itemsize)
    if name is None:
        raise ColumnsError(
            f"dtype {dtype} is not supported: use int16/32/64, float32/64, bool, datetime64[D], "
            "datetime64[us], object or str"
        )
    return _KINDS[name]


def _compile(conn: Connection, stmt: Executable | str) -> str:
    """The query as SQL text with every value inline (COPY takes no parameters).

    Values are rendered by the connection's own dialect, which knows the server's
    ``standard_conforming_strings`` (so quotes and backslashes in strings are escaped as the server reads
    them); a parameter without a value is refused rather than rendered as NULL.
    """
    if isinstance(stmt, str):
        return stmt.strip().rstrip(";")
    if not isinstance(stmt, ClauseElement):
        raise ColumnsError(f"a query is a SELECT or a SQL string, not {type(stmt).__name__}")
    plain = stmt.compile(dialect=conn.dialect)
    binds = plain.binds.values() if isinstance(plain, SQLCompiler) else ()
    unbound = sorted(b.key for b in binds if b.required)
    if unbound:
        raise ColumnsError(f"the query has parameters without a value: {', '.join(unbound)}")
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.paramstyle in ("format", "pyformat"):
        # The dialect doubled every % for the driver's placeholders; with no parameters psycopg sends the
        # text unchanged, so undo it.
        sql = sql.replace("%%", "%")
    return sql


def _column_count(conn: Connection, stmt: Executable | str, sql: str) -> int:
    if isinstance(stmt, SelectBase):
        return len(stmt.selected_columns)
    with _driver(conn).cursor() as cur:
        cur.execute(f"SELECT * FROM (\n{sql}\n) AS _q LIMIT 0")
        return len(cur.description or ())


def _copy_out_sql(sql: str, kinds: Sequence[_Kind]) -> str:
    """COPY of the query with every column cast to its kind (the alias list names the columns)."""
    names = [f"c{i}" for i in range(len(kinds))]
    casts = ", ".join(f"{n}::{k.pg}" for n, k in zip(names, kinds, strict=True))
    select = f"SELECT {casts} FROM (\n{sql}\n) AS _dbcolumns({', '.join(names)})"
    return f"COPY ({select}) TO STDOUT (FORMAT binary)"


def _read_copy(
    conn: Connection, stmt: Executable | str, wanted: list[np.dtype[Any]], nulls: Nulls
) -> list[Array]:
    kinds = [_read_kind(d) for d in wanted]
    sql = _compile(conn, stmt)
    got = _column_count(conn, stmt, sql)
    if got != len(kinds):
        raise ColumnsError(f"the query selects {got} column(s), but {len(kinds)} dtype(s) were given")
    raw = _driver(conn)
    fixed = all(k.wire for k in kinds)
    row_size = 2 + sum(4 + k.width for k in kinds) if fixed else _NEVER
    with raw.cursor() as cur, cur.copy(_copy_out_sql(sql, kinds)) as copy:
        stream = _pump(copy, raw.pgconn, row_size, raw.info.encoding)
    fields: list[tuple[Any, Array | None]]
    if stream.ragged:
        fields = list(_decode_ragged(stream, kinds, raw.info.encoding))
    else:
        fields = [(v, None) for v in _decode_fixed(stream.buf, kinds)]
    return [
        _finish(values, null, kind, dtype, nulls, i)
        for i, ((values, null), kind, dtype) in enumerate(zip(fields, kinds, wanted, strict=True))
    ]


@dataclass
class _Stream:
    """The rows of a COPY stream, header and trailer removed, in one buffer."""

    buf: bytearray
    row_size: int  # of the fixed layout; _NEVER with text columns
    fixed_rows: int  # how many leading rows have the fixed layout, when ``ragged``
    sizes: array[int]  # the size of every row after those
    ragged: bool


def _after_header(first: Any) -> memoryview:
    """What follows the 19-byte header (and any header extension) in the stream's first message."""
    head = bytes(first)
    if len(head) < len(_HEADER) or not head.startswith(_SIGNATURE):
        raise CopyFormatError("the COPY stream does not start with the binary signature")
    flags, extension = struct.unpack(">ii", head[11:19])
    if flags >> 16:  # bit 16: OIDs included; bits 17-31: critical flags of a later format
        raise CopyFormatError(f"the COPY header has flags this reader does not know: {flags:#x}")
    if extension < 0 or len(head) < 19 + extension:
        raise CopyFormatError("the COPY header extension is cut short")
    return memoryview(head)[19 + extension :]


def _pump(copy: psycopg.Copy, pgconn: pq.abc.PGconn, row_size: int, encoding: str) -> _Stream:
    """Every row message of a COPY TO, appended to one buffer, until the trailer.

    PostgreSQL sends one message per row; at 12 million rows the per-message cost is what counts, so the
    loop takes the rows libpq has already received straight from ``PGconn.get_copy_data`` (non-blocking)
    and goes through psycopg's ``Copy.read`` only to wait for the network (interruptibly, as psycopg does).
    The trailer is a message of its own: seeing it, the loop lets ``Copy.read`` finish the COPY.
    """
    data: Any = _after_header(copy.read())
    nb = len(data)
    buf, sizes, fixed_rows, size = bytearray(), array("i"), 0, row_size
    get, read = pgconn.get_copy_data, copy.read
    while True:
        if nb == size:  # a row of the fixed layout: the hot path
            buf += data
        elif nb > 2:  # a row with a NULL or text: from here on every row's size is kept
            if size != _NEVER:
                fixed_rows, size = len(buf) // row_size, _NEVER
            sizes.append(nb)
            buf += data
        elif nb == 0:  # nothing received yet: wait the psycopg way
            data = read()
            nb = len(data)
            if nb == 0:
                raise CopyFormatError("the COPY stream ended without its trailer")
            continue
        elif nb == 2 and data == _TRAILER:
            break
        else:
            _raise_ended_early(pgconn, encoding)
        nb, data = get(1)
    if read():  # finishes the COPY: psycopg collects the final result
        raise CopyFormatError("the COPY stream goes on after its trailer")
    ragged = size == _NEVER
    return _Stream(buf, row_size, fixed_rows if row_size != _NEVER else 0, sizes, ragged)


def _raise_ended_early(pgconn: pq.abc.PGconn, encoding: str) -> None:
    """The stream stopped before its trailer: an error on the server (the usual case) or a broken stream.

    ``get_copy_data`` has consumed the end of the COPY, so its result is collected here (psycopg would look
    for more data and fail), leaving the connection ready for the caller's rollback.
    """
    results = []
    while (res := pgconn.get_result()) is not None:
        results.append(res)
    for res in results:
        if res.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(res, encoding=encoding)
    raise CopyFormatError("the COPY stream ended without its trailer")


def _fixed_row(kinds: Sequence[_Kind]) -> np.dtype[Any]:
    """One row as it is on the wire: packed, big-endian."""
    fields = [("n", ">i2")]
    for i, k in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", k.wire)]
    return np.dtype(fields)


def _decode_fixed(buf: bytearray, kinds: Sequence[_Kind]) -> list[Array]:
    """The values of rows that all have the fixed layout: one structured view, no loop over rows."""
    rows = np.frombuffer(buf, dtype=_fixed_row(kinds))
    if rows.size and not (rows["n"] == len(kinds)).all():
        raise CopyFormatError("a row of the COPY stream has the wrong number of fields")
    for i, k in enumerate(kinds):
        if rows.size and not (rows[f"l{i}"] == k.width).all():
            raise CopyFormatError(f"column {i}: a value is not {k.width} bytes long")
    return [rows[f"v{i}"] for i in range(len(kinds))]


def _gather(b: npt.NDArray[np.uint8], pos: npt.NDArray[np.int64], wire: str) -> Array:
    """The ``wire``-typed value at each byte position of ``b``."""
    width = np.dtype(wire).itemsize
    out = np.empty((pos.shape[0], width), np.uint8)
    for j in range(width):
        out[:, j] = b[pos + j]
    return out.view(wire).reshape(-1)


def _decode_ragged(stream: _Stream, kinds: Sequence[_Kind], encoding: str) -> list[tuple[Any, Array]]:
    """Values and NULL masks of rows of differing sizes, walking all rows one field at a time."""
    sizes = np.concatenate(
        (np.full(stream.fixed_rows, stream.row_size, np.int64), np.frombuffer(stream.sizes, np.int32))
    )
    ends = np.cumsum(sizes)
    starts = ends - sizes
    stream.buf += bytes(8)  # room for reading a NULL's absent value at the very end of the buffer
    b = np.frombuffer(stream.buf, np.uint8)
    if starts.size and not (_gather(b, starts, ">i2") == len(kinds)).all():
        raise CopyFormatError("a row of the COPY stream has the wrong number of fields")
    pos, out = starts + 2, []
    for i, k in enumerate(kinds):
        length = _gather(b, pos, ">i4").astype(np.int64)
        pos = pos + 4
        null = length == -1
        if (length < -1).any() or (pos + np.maximum(length, 0) > ends).any():
            raise CopyFormatError(f"column {i}: a field length runs outside its row")
        if k.wire:
            if not (length[~null] == k.width).all():
                raise CopyFormatError(f"column {i}: a value is not {k.width} bytes long")
            values: Any = _gather(b, np.where(null, 0, pos), k.wire)
            values[null] = 0
        else:
            values = _texts(stream.buf, pos, length, encoding)
        pos = pos + np.maximum(length, 0)
        out.append((values, null))
    if not np.array_equal(pos, ends):
        raise CopyFormatError("the fields of a row do not add up to its size")
    return out


def _texts(
    buf: bytearray, pos: npt.NDArray[np.int64], length: npt.NDArray[np.int64], encoding: str
) -> list[str | None]:
    """The slow path: one ``str`` per value."""
    view = memoryview(buf)
    return [
        None if n < 0 else str(view[p : p + n], encoding)
        for p, n in zip(pos.tolist(), length.tolist(), strict=True)
    ]


def _finish(
    values: Any, null: Array | None, kind: _Kind, dtype: np.dtype[Any], nulls: Nulls, i: int
) -> Array:
    """A decoded column in the dtype asked for, with its NULLs as the caller asked."""
    if null is None:
        null = np.zeros(len(values), np.bool_)
    _check_nulls(null, nulls, i)
    if kind.wire:
        data = _from_wire(values, kind, dtype, i)
    else:
        data = np.array(values, dtype=object) if dtype.kind == "O" else _str_array(values, dtype)
    return data if nulls == "raise" else np.ma.MaskedArray(data, mask=null)


def _check_nulls(null: Array, nulls: Nulls, i: int) -> None:
    if nulls == "raise" and null.any():
        raise NullValueError(
            f"column {i} is NULL in row {int(np.flatnonzero(null)[0])}: COALESCE it in the query, "
            "or read with nulls='mask'"
        )


def _str_array(values: list[str | None], dtype: np.dtype[Any]) -> Array:
    out = np.array(["" if v is None else v for v in values], dtype=dtype)
    return out if out.size else np.empty(0, dtype=dtype)


def _from_wire(values: Array, kind: _Kind, dtype: np.dtype[Any], i: int) -> Array:
    """Big-endian wire values to the native dtype: dates and timestamps move from PostgreSQL's epoch."""
    if kind.pg == "date":
        days = values.astype(np.int64)
        if days.size and (days.max() == _I32.max or days.min() == _I32.min):
            raise ColumnsError(f"column {i}: an infinite date has no datetime64 value")
        out: Array = (days + _EPOCH_DAYS).view("datetime64[D]")
        return out
    if kind.pg in ("timestamp", "timestamptz"):
        us = values.astype(np.int64)
        if us.size and (us.max() > _I64.max - _EPOCH_US or us.min() == _I64.min):
            raise ColumnsError(f"column {i}: an infinite timestamp, or one beyond datetime64[us]'s range")
        out = (us + _EPOCH_US).view("datetime64[us]")
        return out
    return values.astype(dtype)


def _read_rows(
    conn: Connection, stmt: Executable | str, wanted: list[np.dtype[Any]], nulls: Nulls
) -> list[Array]:
    """The fallback (SQLite): plain rows, then one numpy conversion per column."""
    result = conn.exec_driver_sql(stmt) if isinstance(stmt, str) else conn.execute(stmt)
    if len(result.keys()) != len(wanted):
        raise ColumnsError(
            f"the query selects {len(result.keys())} column(s), but {len(wanted)} dtype(s) were given"
        )
    rows = result.all()
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [() for _ in wanted]
    return [
        _column_from_values(list(col), dtype, nulls, i)
        for i, (col, dtype) in enumerate(zip(columns, wanted, strict=True))
    ]


def _column_from_values(values: list[Any], dtype: np.dtype[Any], nulls: Nulls, i: int) -> Array:
    _read_kind(dtype)  # the same dtypes as on PostgreSQL
    null = np.fromiter((v is None for v in values), np.bool_, count=len(values))
    _check_nulls(null, nulls, i)
    if null.any():
        fill = _fill_value(dtype)
        values = [fill if v is None else v for v in values]
    if dtype.kind == "U":
        data = np.array(values, dtype=dtype) if values else np.empty(0, dtype=dtype)
    else:
        data = np.array(values, dtype=dtype)
    if dtype.kind == "O" and null.any():
        data[null] = None
    return data if nulls == "raise" else np.ma.MaskedArray(data, mask=null)


def _fill_value(dtype: np.dtype[Any]) -> Any:
    """A stand-in for NULL while a column converts: the masked entries' value (1970-01-01 for dates)."""
    return "" if dtype.kind in "OU" else np.zeros((), dtype).item()


# --- writing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Categorical:
    """A text column given as ``codes`` into ``labels`` (the value of row i is ``labels[codes[i]]``, code -1
    is NULL): each label is encoded once, so writing costs no Python per row. For statuses, sources, reasons:
    any text with few distinct values."""

    codes: npt.NDArray[np.integer[Any]]
    labels: Sequence[str]

    def __len__(self) -> int:
        return len(self.codes)


Column = Array | Sequence[Any] | Categorical


@dataclass(frozen=True)
class _Col:
    """A column to write, checked: ``values`` in the native dtype of its kind, NULLs apart."""

    name: str
    kind: _Kind
    values: Array  # int/float/bool; datetime64[D] or [us]; object or <U for text; codes if ``labels``
    null: npt.NDArray[np.bool_] | None  # None: no NULL at all
    labels: tuple[str, ...] | None = None  # a Categorical's labels


def write_columns(
    session_or_connection: Session | Connection,
    table_name: str | Table,
    columns: Mapping[str, Column],
    types: Mapping[str, str] | None = None,
) -> int:
    """Insert rows given as columns into ``table_name``; returns the number of rows.

    ``columns`` maps column names to equally long numpy arrays or sequences (NULLs: masked arrays, or
    ``None`` in a list or an object array). ``types`` gives a column's PostgreSQL type (``int8``,
    ``varchar(256)``, ``date``...); the ones not given are looked up in the table. On PostgreSQL the rows go
    by binary COPY, on SQLite by executemany in chunks. The table name is an identifier (``schema.table``
    allowed), quoted as given.
    """
    if not columns:
        raise ColumnsError("no columns to write")
    n = _common_length(columns)
    conn = _sa_connection(session_or_connection)
    if _is_postgresql(conn):
        return _write_copy(conn, table_name, columns, types or {}, n)
    return _write_rows(conn, table_name, columns, types or {}, n)


def _common_length(columns: Mapping[str, Column]) -> int:
    lengths: dict[str, int] = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray) and values.ndim != 1:
            raise ColumnsError(f"column {name!r}: a column is one-dimensional, not of shape {values.shape}")
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        raise ColumnsError(f"the columns differ in length: {lengths}")
    return next(iter(lengths.values()))


def _qualified(raw: psycopg.Connection[Any], table: str | Table) -> str:
    parts = [table.schema, table.name] if isinstance(table, Table) and table.schema else None
    if parts is None:
        parts = [table.name] if isinstance(table, Table) else table.split(".")
    return pgsql.Identifier(*[p for p in parts if p]).as_string(raw)


def _pg_types(conn: Connection, qualified: str) -> dict[str, str]:
    """Column name -> type name, as COPY will resolve the table (search path, temporary tables first)."""
    rows = conn.execute(
        text(
            "SELECT a.attname, CASE WHEN t.typtype = 'e' THEN 'text' ELSE t.typname END"
            " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"t": qualified},
    ).all()
    if not rows:
        raise ColumnsError(f"table {qualified} does not exist (or has no columns)")
    return {str(name): str(typ) for name, typ in rows}


def _write_copy(
    conn: Connection,
    table: str | Table,
    columns: Mapping[str, Column],
    types: Mapping[str, str],
    n: int,
) -> int:
    raw = _driver(conn)
    qualified = _qualified(raw, table)
    known = dict(types)
    if any(name not in known for name in columns):
        found = _pg_types(conn, qualified)
        missing = [name for name in columns if name not in known and name not in found]
        if missing:
            raise ColumnsError(f"table {qualified} has no column(s) {', '.join(missing)}")
        known = {**found, **known}
    cols = [
        _prepare(name, values, _kind(known[name], f"column {name!r}")) for name, values in columns.items()
    ]
    if n == 0:
        return 0
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        pgsql.SQL(qualified), pgsql.SQL(", ").join(pgsql.Identifier(c.name) for c in cols)
    )
    step = _chunk_rows(cols)
    with raw.cursor() as cur:
        with cur.copy(statement) as copy:
            copy.write(_HEADER)
            for lo in range(0, n, step):
                copy.write(_encode_chunk(cols, lo, min(lo + step, n), raw.info.encoding))
            copy.write(_TRAILER)
        if cur.rowcount not in (-1, n):
            raise CopyFormatError(f"COPY reports {cur.rowcount} rows written, not {n}")
    return n


def _chunk_rows(cols: Sequence[_Col]) -> int:
    """Rows per COPY chunk, from a row's fixed part plus a guess of 32 bytes per text value."""
    row = 2 + sum(4 + (c.kind.width or 32) for c in cols)
    return max(1024, _CHUNK_BYTES // row)


def _split_nulls(values: Array | Sequence[Any], kind: _Kind) -> tuple[Array, npt.NDArray[np.bool_] | None]:
    """The values and where they are NULL: masked entries, or ``None`` in a list or object array."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return np.ma.getdata(values), (mask if mask.any() else None)
    if isinstance(values, np.ndarray):
        arr = values
    else:  # a list of text stays objects, or numpy would make str of anything in it
        arr = np.array(values, dtype=object) if kind.pg == "text" else np.asarray(values)
    if arr.dtype.kind == "T":  # numpy's variable-width strings: as objects
        arr = arr.astype(object)
    if arr.dtype.kind != "O":
        return arr, None
    null = np.fromiter((v is None for v in arr.tolist()), np.bool_, count=arr.shape[0])
    return arr, (null if null.any() else None)


def _prepare(name: str, values: Column, kind: _Kind) -> _Col:
    """Checks a column and brings it to its kind's native dtype, before any byte is sent."""
    if isinstance(values, Categorical):
        return _prepare_categorical(name, values, kind)
    arr, null = _split_nulls(values, kind)
    if kind.pg == "text":
        if arr.dtype.kind not in "OU":
            raise ColumnsError(f"column {name!r}: text comes as str or object arrays, not {arr.dtype}")
        return _Col(name, kind, arr, null)
    if arr.dtype.kind == "O":  # Python objects with None: fill NULLs, then convert as numpy would
        filled = arr.copy()
        if null is not None:
            filled[null] = _WRITE_FILL.get(kind.pg, 0)
        arr = _object_to_native(name, filled, kind)
    native = _to_native(name, arr, kind, null)
    return _Col(name, kind, native, null)


def _prepare_categorical(name: str, values: Categorical, kind: _Kind) -> _Col:
    codes = np.asarray(values.codes)
    labels = tuple(values.labels)
    if kind.pg != "text":
        raise ColumnsError(f"column {name!r}: a Categorical is text, the column is {kind.pg}")
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise ColumnsError(f"column {name!r}: a Categorical's codes are a 1-d integer array")
    if codes.size and (int(codes.min()) < -1 or int(codes.max()) >= len(labels)):
        raise ColumnsError(f"column {name!r}: a code is outside -1 (NULL) .. {len(labels) - 1}")
    if not all(isinstance(label, str) for label in labels):
        raise ColumnsError(f"column {name!r}: labels must be str")
    null = codes == -1
    return _Col(name, kind, codes.astype(np.intp), null if null.any() else None, labels)


def _object_to_native(name: str, arr: Array, kind: _Kind) -> Array:
    target = {"date": "datetime64[D]", "timestamp": "datetime64[us]", "timestamptz": "datetime64[us]"}
    try:
        return np.array(arr.tolist(), dtype=target.get(kind.pg, kind.wire.lstrip("<>")))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ColumnsError(f"column {name!r}: not {kind.pg} values ({exc})") from None


def _to_native(name: str, arr: Array, kind: _Kind, null: npt.NDArray[np.bool_] | None) -> Array:
    """The column in the native dtype of ``kind``; values that would not survive the conversion raise."""
    what = f"column {name!r} ({kind.pg})"
    real = arr if null is None else arr[~null]
    if kind.pg in ("int2", "int4", "int8"):
        if arr.dtype.kind not in "iu":
            raise ColumnsError(f"{what}: needs integers, not {arr.dtype}")
        info = np.iinfo(np.dtype(kind.wire))
        if real.size and (int(real.min()) < info.min or int(real.max()) > info.max):
            raise ColumnsError(f"{what}: a value is out of range [{info.min}, {info.max}]")
        return arr
    if kind.pg in ("float4", "float8"):
        if arr.dtype.kind not in "iuf":
            raise ColumnsError(f"{what}: needs numbers, not {arr.dtype}")
        return arr
    if kind.pg == "bool":
        if arr.dtype.kind != "b":
            raise ColumnsError(f"{what}: needs a bool array, not {arr.dtype}")
        return arr
    return _to_datetime(what, arr, kind, real)


def _to_datetime(what: str, arr: Array, kind: _Kind, real: Array) -> Array:
    if arr.dtype.kind != "M":
        raise ColumnsError(f"{what}: needs datetime64 values, not {arr.dtype}")
    unit = np.datetime_data(arr.dtype)[0]
    if kind.pg == "date" and unit != "D":
        raise ColumnsError(f"{what}: needs datetime64[D], not {arr.dtype} (truncate it explicitly)")
    if unit in ("ns", "ps", "fs", "as"):
        raise ColumnsError(f"{what}: needs microseconds at most, not {arr.dtype} (round it explicitly)")
    if np.isnat(real).any():
        raise ColumnsError(f"{what}: NaT is not NULL; mask the entry (numpy.ma) to write a NULL")
    native = arr if kind.pg == "date" else arr.astype("datetime64[us]")
    # the shift to PostgreSQL's epoch must not wrap around; the server checks its own range after that
    ticks = (real if kind.pg == "date" else real.astype("datetime64[us]")).view(np.int64)
    low, high = (_I32.min + _EPOCH_DAYS, _I32.max) if kind.pg == "date" else (_I64.min + _EPOCH_US, _I64.max)
    if ticks.size and (int(ticks.min()) <= low or int(ticks.max()) >= high):
        raise ColumnsError(f"{what}: a value is out of PostgreSQL's range")
    return native


def _wire_values(c: _Col, lo: int, hi: int) -> Array:
    """A chunk of a fixed-width column in PostgreSQL's units (native order: the record is big-endian).

    Under a NULL there may be anything (a masked array's data): it is converted like the rest, wrapping
    around if it must, and its bytes are dropped.
    """
    v = c.values[lo:hi]
    if c.kind.pg == "date":
        return v.view(np.int64) - _EPOCH_DAYS
    if c.kind.pg in ("timestamp", "timestamptz"):
        return v.view(np.int64) - _EPOCH_US
    return v


def _encode_texts(c: _Col, lo: int, hi: int, encoding: str) -> tuple[npt.NDArray[np.int32], Array]:
    """Byte lengths (-1 for NULL) and the encoded values of a chunk of a text column, as an ``S`` array."""
    v = c.values[lo:hi]
    if c.labels is not None:  # categorical: each label encoded once, the NULL label (-1) last
        encoded_labels = np.array([s.encode(encoding) for s in c.labels] + [b""], dtype=np.bytes_)
        label_lengths = np.char.str_len(encoded_labels).astype(np.int32)
        label_lengths[-1] = -1
        return label_lengths[v], encoded_labels[v]
    encoded = _ascii(v) if v.dtype.kind == "U" else None
    if encoded is None:
        try:
            parts = [b"" if s is None else s.encode(encoding) for s in v.tolist()]
        except AttributeError:
            raise ColumnsError(f"column {c.name!r}: text values must be str (or None)") from None
        encoded = np.array(parts, dtype=np.bytes_) if parts else np.empty(0, "S1")
    lengths = np.char.str_len(encoded).astype(np.int32)  # PostgreSQL text holds no NUL, so this is exact
    if c.null is not None:
        lengths[c.null[lo:hi]] = -1
    return lengths, encoded


def _ascii(v: Array) -> Array | None:
    """A ``<U`` array as ``S`` bytes if it is all ASCII (then UTF-8 and most encodings agree), else None.

    Done on the code points as integers: numpy's own str-to-bytes cast encodes value by value.
    """
    width = v.dtype.itemsize // 4
    points = np.ascontiguousarray(v, dtype=f"=U{width}").view(np.uint32).reshape(v.shape[0], width)
    if points.size and int(points.max()) > 127:
        return None
    return points.astype(np.uint8).view(f"S{width}").reshape(v.shape[0])


def _record(cols: Sequence[_Col], texts: Mapping[int, tuple[Array, Array]], n: int) -> Array:
    """``n`` rows of the chunk's record type, with what is the same in every row already in place (the
    field count, the length of every fixed-width field): one template row repeated."""
    fields: list[tuple[str, Any]] = [("n", ">i2")]
    for i, c in enumerate(cols):
        fields += [(f"l{i}", ">i4"), (f"v{i}", c.kind.wire or texts[i][1].dtype)]
    template = np.zeros(1, np.dtype(fields))
    template["n"] = len(cols)
    for i, c in enumerate(cols):
        template[f"l{i}"] = c.kind.width
    return np.repeat(template, n)


def _encode_chunk(cols: Sequence[_Col], lo: int, hi: int, encoding: str) -> bytes:
    """Rows ``lo:hi`` as binary COPY rows.

    All fields go into one structured array of big-endian fields (text as a fixed-width bytes field, as wide
    as the chunk's longest value). Without NULLs and text that array is the payload as it is; otherwise a
    boolean mask over its bytes keeps, of each such field, only the bytes its row has (none for a NULL, the
    text's length), and drops the rest in one pass.
    """
    n = hi - lo
    texts = {i: _encode_texts(c, lo, hi, encoding) for i, c in enumerate(cols) if not c.kind.wire}
    rec = _record(cols, texts, n)
    holes: list[tuple[int, int, Array]] = []  # (offset, width, bytes kept in each row)
    for i, c in enumerate(cols):
        offset: int = rec.dtype.fields[f"v{i}"][1]  # type: ignore[index]
        if not c.kind.wire:
            lengths, encoded = texts[i]
            rec[f"l{i}"], rec[f"v{i}"] = lengths, encoded
            holes.append((offset, encoded.dtype.itemsize, lengths))
            continue
        rec[f"v{i}"] = _wire_values(c, lo, hi)
        null = c.null[lo:hi] if c.null is not None else None
        if null is not None and null.any():
            rec[f"l{i}"][null] = -1
            holes.append((offset, c.kind.width, np.where(null, 0, c.kind.width)))
    if not holes:
        return rec.tobytes()
    size = rec.dtype.itemsize
    keep = np.ones((n, size), np.bool_)
    for offset, width, kept in holes:
        np.less(np.arange(width), kept[:, None], out=keep[:, offset : offset + width])
    return rec.view(np.uint8).reshape(n, size)[keep].tobytes()


def _write_rows(
    conn: Connection,
    table: str | Table,
    columns: Mapping[str, Column],
    types: Mapping[str, str],
    n: int,
) -> int:
    """The fallback (SQLite): the same checks, then executemany through the reflected table."""
    target = table if isinstance(table, Table) else Table(table, MetaData(), autoload_with=conn)
    missing = [name for name in columns if name not in target.c]
    if missing:
        raise ColumnsError(f"table {target.name} has no column(s) {', '.join(missing)}")
    cols = [
        _prepare(
            name, values, _kind(types[name], f"column {name!r}") if name in types else _sa_kind(target, name)
        )
        for name, values in columns.items()
    ]
    lists = [_python_values(c) for c in cols]
    names = [c.name for c in cols]
    stmt = insert(target)
    for lo in range(0, n, _SQLITE_CHUNK):
        chunk = [v[lo : lo + _SQLITE_CHUNK] for v in lists]
        conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in zip(*chunk, strict=True)])
    return n


def _sa_kind(table: Table, name: str) -> _Kind:
    """The kind of a reflected column; SQLite keeps every integer in 64 bits."""
    t = table.c[name].type
    checks: list[tuple[type[Any], str]] = [
        (satypes.Boolean, "bool"),
        (satypes.Integer, "int8"),
        (satypes.Float, "float8"),
        (satypes.Numeric, "float8"),
        (satypes.DateTime, "timestamp"),
        (satypes.Date, "date"),
        (satypes.String, "text"),
    ]
    for cls, kind in checks:
        if isinstance(t, cls):
            return _KINDS[kind]
    raise ColumnsError(f"column {name!r}: type {t} is not supported")


def _python_values(c: _Col) -> list[Any]:
    if c.labels is not None:
        labelled: list[Any] = np.array([*c.labels, None], dtype=object)[c.values].tolist()
        return labelled
    values: list[Any] = c.values.tolist()
    if c.kind.pg == "text" and not all(v is None or isinstance(v, str) for v in values):
        raise ColumnsError(f"column {c.name!r}: text values must be str (or None)")  # as COPY would
    if c.null is not None:
        for i in np.flatnonzero(c.null).tolist():
            values[i] = None
    return values


# --- updating -------------------------------------------------------------------------------------------

_STAGE = "fulfil_update_stage"


def update_columns(
    session_or_connection: Session | Connection,
    table: Table,
    ids: npt.NDArray[np.int64],
    columns: Mapping[str, Column],
) -> int:
    """Set ``columns`` of the rows of ``table`` whose ``id`` is in ``ids`` (row ``i`` gets each column's
    ``i``-th value); returns the rows matched.

    On PostgreSQL the values go by COPY into a temporary table and one ``UPDATE ... FROM`` joins it: a
    statement per row would cost a round trip each. On SQLite, executemany in chunks.
    """
    if not columns:
        raise ColumnsError("no columns to update")
    n = _common_length({"id": ids, **columns})
    if n == 0:
        return 0
    conn = _sa_connection(session_or_connection)
    if not _is_postgresql(conn):
        missing = [name for name in columns if name not in table.c]
        if missing:
            raise ColumnsError(f"table {table.name} has no column(s) {', '.join(missing)}")
        lists = {
            name: _python_values(_prepare(name, v, _sa_kind(table, name))) for name, v in columns.items()
        }
        stmt = (
            table.update()
            .where(table.c.id == bindparam("_id"))
            .values({name: bindparam(f"_{name}") for name in columns})
        )
        id_list = np.asarray(ids, dtype=np.int64).tolist()
        matched = 0
        for lo in range(0, n, _SQLITE_CHUNK):
            rows = [
                {"_id": id_list[i], **{f"_{name}": lists[name][i] for name in columns}}
                for i in range(lo, min(lo + _SQLITE_CHUNK, n))
            ]
            result = conn.execute(stmt, rows)
            matched += max(int(result.rowcount), 0)
        return matched
    raw = _driver(conn)
    qualified = _qualified(raw, table)
    types = _pg_types(conn, qualified)
    missing = [name for name in columns if name not in types]
    if missing:
        raise ColumnsError(f"table {qualified} has no column(s) {', '.join(missing)}")
    names = ["id", *columns]
    stage = pgsql.Identifier(_STAGE)
    definition = pgsql.SQL(", ").join(
        pgsql.SQL("{} {}").format(pgsql.Identifier(name), pgsql.SQL(types[name])) for name in names
    )
    with raw.cursor() as cur:
        cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(stage))
        cur.execute(pgsql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(stage, definition))
    _write_copy(conn, _STAGE, {"id": ids, **columns}, {name: types[name] for name in names}, n)
    assignments = pgsql.SQL(", ").join(
        pgsql.SQL("{} = s.{}").format(pgsql.Identifier(name), pgsql.Identifier(name)) for name in columns
    )
    with raw.cursor() as cur:
        cur.execute(
            pgsql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE t.id = s.id").format(
                pgsql.SQL(qualified), assignments, stage
            )
        )
        matched = cur.rowcount
        cur.execute(pgsql.SQL("DROP TABLE {}").format(stage))
    return int(matched)


__all__ = [
    "Categorical",
    "ColumnsError",
    "CopyFormatError",
    "NullValueError",
    "read_columns",
    "update_columns",
    "write_columns",
]
