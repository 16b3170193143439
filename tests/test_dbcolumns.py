"""Columnar bulk I/O (fulfil.dbcolumns): round trips of every type on both backends, NULLs, literal queries,
errors, and proof that PostgreSQL really goes through the binary COPY parser and encoder.

Each test works in throwaway TEMP tables on one connection whose transaction is rolled back at the end, so
nothing is left in the backend's schema (and xdist workers never see each other's tables).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import BigInteger, Column, Connection, Date, MetaData, Table, column, select, table, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from fulfil import dbcolumns
from fulfil.dbcolumns import Categorical, ColumnsError, NullValueError, read_columns, write_columns
from tests.conftest import Backend

DDL = (
    "CREATE TEMP TABLE t (i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, b boolean,"
    " d date, ts timestamp, s varchar(40), x text)"
)
DTYPES: list[Any] = [
    np.int16,
    np.int32,
    np.int64,
    np.float32,
    np.float64,
    np.bool_,
    "datetime64[D]",
    "datetime64[us]",
    object,
    object,
]
SELECT_ALL = "SELECT i2, i4, i8, f4, f8, b, d, ts, s, x FROM t ORDER BY i8"
I64 = np.iinfo(np.int64)


@pytest.fixture
def conn(backend: Backend) -> Iterator[Connection]:
    with backend.engine.connect() as c:
        c.execute(text(DDL))
        yield c
        c.rollback()


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _edge_columns() -> dict[str, Any]:
    """Extremes of every type; sorted by i8 (ORDER BY i8 reads them back in this order)."""
    return {
        "i2": np.array([-32768, -1, 0, 1, 32767], np.int16),
        "i4": np.array([-(2**31), -7, 0, 7, 2**31 - 1], np.int32),
        "i8": np.array([I64.min, -1, 0, 2**40, I64.max], np.int64),
        "f4": np.array([-np.inf, -2.25, 0.0, 1.5, np.inf], np.float32),
        "f8": np.array([-np.inf, -1e300, 5e-324, 1e300, np.inf]),
        "b": np.array([True, False, True, False, True]),
        # either side of PostgreSQL's epoch (2000-01-01) and of numpy's (1970-01-01)
        "d": np.array(
            ["0001-01-01", "1969-12-31", "1999-12-31", "2000-01-01", "9999-12-31"], "datetime64[D]"
        ),
        "ts": np.array(
            [
                "0001-01-01T00:00:00",
                "1969-12-31T23:59:59.999999",
                "1999-12-31T23:59:59.999999",
                "2000-01-01T00:00:00.000001",
                "9999-12-31T23:59:59.999999",
            ],
            "datetime64[us]",
        ),
        "s": np.array(["", "it's", "back\\slash", "50% off", "plain"]),
        "x": ["中文 地址", 'say "hi"', "tab\tnew\nline", "", "éàü"],
    }


def _assert_same(got: list[Any], want: dict[str, Any]) -> None:
    for (name, expected), actual in zip(want.items(), got, strict=True):
        expected = (
            np.asarray(expected, dtype=actual.dtype) if actual.dtype != object else np.asarray(expected)
        )
        assert actual.shape == expected.shape, name
        assert actual.tolist() == expected.tolist(), name


def test_round_trip_of_every_type_with_edge_values(conn: Connection) -> None:
    cols = _edge_columns()
    assert write_columns(conn, "t", cols) == 5
    got = read_columns(conn, SELECT_ALL, DTYPES)
    _assert_same(got, cols)
    assert [a.dtype for a in got[:8]] == [np.dtype(d) for d in DTYPES[:8]]


def test_round_trip_with_explicit_types_and_str_dtype(conn: Connection) -> None:
    cols = _edge_columns()
    types = {"i2": "smallint", "i4": "int4", "i8": "bigint", "f4": "real", "f8": "double precision"}
    types |= {
        "b": "boolean",
        "d": "date",
        "ts": "timestamp without time zone",
        "s": "varchar(40)",
        "x": "text",
    }
    write_columns(conn, "t", cols, types=types)
    (s, x) = read_columns(conn, "SELECT s, x FROM t ORDER BY i8", [str, np.str_])
    assert s.dtype.kind == "U" and x.dtype.kind == "U"
    assert s.tolist() == cols["s"].tolist() and x.tolist() == cols["x"]


def test_nan_is_a_value_on_postgresql(conn: Connection) -> None:
    write_columns(conn, "t", {"i8": np.arange(3), "f8": np.array([np.nan, -0.0, 1.0])})
    (f8,) = read_columns(conn, "SELECT f8 FROM t ORDER BY i8", [np.float64], nulls="mask")
    if _pg(conn):
        assert np.isnan(f8[0]) and not f8.mask.any()
        assert np.signbit(f8[1])
    else:
        assert f8.mask.tolist() == [True, False, False]  # SQLite has no NaN: it stores NULL


def test_nulls_round_trip_as_masked_arrays(conn: Connection) -> None:
    cols = _edge_columns()
    masked: dict[str, Any] = {}
    for k, (name, values) in enumerate(cols.items()):
        mask = np.zeros(5, np.bool_)
        if name != "i8":  # i8 orders the rows
            mask[k % 5] = True
        masked[name] = np.ma.MaskedArray(np.asarray(values), mask=mask)
    write_columns(conn, "t", masked)
    got = read_columns(conn, SELECT_ALL, DTYPES, nulls="mask")
    for (name, want), actual in zip(masked.items(), got, strict=True):
        assert isinstance(actual, np.ma.MaskedArray), name
        assert actual.mask.tolist() == want.mask.tolist(), name
        kept = ~want.mask
        assert actual.data[kept].tolist() == np.asarray(want.data, dtype=actual.dtype)[kept].tolist(), name


def test_none_in_lists_is_null(conn: Connection) -> None:
    write_columns(
        conn,
        "t",
        {
            "i8": [1, 2, 3],
            "i4": [None, 5, None],
            "d": [dt.date(2026, 11, 23), None, dt.date(1999, 1, 1)],
            "ts": [None, dt.datetime(2000, 1, 1, 0, 0, 1), None],
            "b": [True, None, False],
            "s": ["a", None, "c"],
        },
    )
    i4, d, ts, b, s = read_columns(
        conn,
        "SELECT i4, d, ts, b, s FROM t ORDER BY i8",
        [np.int64, "datetime64[D]", "datetime64[us]", np.bool_, object],
        nulls="mask",
    )
    assert i4.tolist() == [None, 5, None]
    assert d.tolist() == [dt.date(2026, 11, 23), None, dt.date(1999, 1, 1)]
    assert ts.tolist() == [None, dt.datetime(2000, 1, 1, 0, 0, 1), None]
    assert b.tolist() == [True, None, False]
    assert s.tolist() == ["a", None, "c"]


def test_categorical_and_non_ascii_str_arrays(conn: Connection) -> None:
    """Text from codes into labels (-1: NULL), and a str array that numpy cannot take as ASCII."""
    labels = ["workshop", "仓库", "it's"]
    codes = np.array([0, 1, -1, 2, 0], np.int8)
    words = np.array(["a", "中文", "", "b", "éé"])
    write_columns(conn, "t", {"i8": np.arange(5), "s": Categorical(codes, labels), "x": words})
    s, x = read_columns(conn, "SELECT s, x FROM t ORDER BY i8", [object, object], nulls="mask")
    assert s.tolist() == ["workshop", "仓库", None, "it's", "workshop"]
    assert x.tolist() == words.tolist()
    with pytest.raises(ColumnsError, match="outside -1"):
        write_columns(conn, "t", {"s": Categorical(np.array([3]), labels)})
    with pytest.raises(ColumnsError, match="a Categorical is text"):
        write_columns(conn, "t", {"i8": Categorical(np.array([0]), labels)})


def test_a_table_object_names_the_table(conn: Connection) -> None:
    t = Table("t", MetaData(), Column("i8", BigInteger), Column("d", Date))
    assert write_columns(conn, t, {"i8": np.array([5]), "d": np.array(["2026-11-23"], "M8[D]")}) == 1
    assert read_columns(conn, select(t.c.i8, t.c.d), [np.int64, "M8[D]"])[1].tolist() == [
        dt.date(2026, 11, 23)
    ]


def test_a_null_read_without_mask_raises(conn: Connection) -> None:
    write_columns(conn, "t", {"i8": [1, 2], "i4": [7, None]})
    with pytest.raises(NullValueError, match="column 1 is NULL in row 1"):
        read_columns(conn, "SELECT i8, i4 FROM t ORDER BY i8", [np.int64, np.int64])
    conn.rollback()


def test_empty_input_and_empty_result(conn: Connection) -> None:
    empty = {name: np.asarray(v)[:0] for name, v in _edge_columns().items()}
    assert write_columns(conn, "t", empty) == 0
    got = read_columns(conn, SELECT_ALL, DTYPES)
    assert [a.shape for a in got] == [(0,)] * len(DTYPES)
    assert [a.dtype for a in got] == [np.dtype(d) for d in DTYPES]


def test_select_with_literal_values_is_compiled_safely(conn: Connection) -> None:
    tricky = ["it's", "50% off", "back\\slash", "x'); DROP TABLE t; --", "%%(name)s"]
    write_columns(
        conn, "t", {"i8": np.arange(len(tricky)), "s": tricky, "d": np.full(5, "2001-02-03", "M8[D]")}
    )
    t = table("t", column("i8"), column("s"), column("d"))
    for k, value in enumerate(tricky):
        stmt = select(t.c.i8, t.c.s).where(t.c.s == value, t.c.d >= dt.date(2001, 2, 3), t.c.i8 % 100 == k)
        i8, s = read_columns(conn, stmt, [np.int64, object])
        assert i8.tolist() == [k] and s.tolist() == [value]
    stmt = select(t.c.i8).where(t.c.s.in_(tricky[:2]), t.c.s.like("%'%")).order_by(t.c.i8.desc())
    assert read_columns(conn, stmt, [np.int64])[0].tolist() == [0]
    assert read_columns(conn, "SELECT count(*) FROM t", [np.int64])[0].tolist() == [5]  # t survived


def test_order_by_is_kept(conn: Connection) -> None:
    write_columns(conn, "t", {"i8": np.arange(1000), "i4": (np.arange(1000) * 7919 % 1000).astype(np.int32)})
    t = table("t", column("i8"), column("i4"))
    (i4,) = read_columns(conn, select(t.c.i4).order_by(t.c.i4.desc()), [np.int32])
    assert i4.tolist() == list(range(999, -1, -1))


def test_a_parameter_without_value_is_refused(conn: Connection) -> None:
    from sqlalchemy import bindparam

    t = table("t", column("i8"))
    stmt = select(t.c.i8).where(t.c.i8 == bindparam("x"))
    # on PostgreSQL the value would be rendered inline (as NULL, by SQLAlchemy); on SQLite it is bound
    with pytest.raises(ColumnsError if _pg(conn) else StatementError, match=r"without a value: x|required"):
        read_columns(conn, stmt, [np.int64])


def test_wrong_number_of_dtypes_is_refused(conn: Connection) -> None:
    with pytest.raises(ColumnsError, match="selects 2 column"):
        read_columns(conn, "SELECT i8, i4 FROM t", [np.int64])
    t = table("t", column("i8"), column("i4"))
    with pytest.raises(ColumnsError, match="selects 2 column"):
        read_columns(conn, select(t.c.i8, t.c.i4), [np.int64, np.int64, np.int64])


def test_columns_of_different_lengths_are_refused(conn: Connection) -> None:
    with pytest.raises(ColumnsError, match=r"differ in length.*'i8': 3.*'i4': 2"):
        write_columns(conn, "t", {"i8": np.arange(3), "i4": np.arange(2, dtype=np.int32)})
    assert read_columns(conn, "SELECT count(*) FROM t", [np.int64])[0].tolist() == [0]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"i8": np.array([2**63], np.uint64)}, r"out of range \[-9223372036854775808, 9223372036854775807\]"),
        ({"i8": np.array([1.5])}, "needs integers"),
        ({"b": np.array([0, 1])}, "needs a bool array"),
        ({"d": np.array(["2020-01-01T10"], "M8[h]")}, r"needs datetime64\[D\]"),
        ({"ts": np.array(["NaT"], "M8[us]")}, "NaT is not NULL"),
        ({"ts": np.array([1], "M8[ns]")}, "microseconds at most"),
        ({"s": np.array([1, 2])}, "text comes as str"),
        ({"s": ["a", 3]}, "must be str"),
        ({"nope": [1]}, "no column"),
        ({"i8": np.zeros((2, 2), np.int64)}, "one-dimensional"),
    ],
)
def test_values_that_would_not_survive_are_refused(
    conn: Connection, columns: dict[str, Any], message: str
) -> None:
    with pytest.raises(ColumnsError, match=message):
        write_columns(conn, "t", columns)


def test_narrow_integers_are_range_checked(conn: Connection) -> None:
    """Binary COPY would send the low bytes: the range is checked first (SQLite checks only when told the
    type, since it keeps every integer column in 64 bits)."""
    with pytest.raises(ColumnsError, match=r"out of range \[-2147483648, 2147483647\]"):
        write_columns(conn, "t", {"i4": np.array([2**31])}, types={"i4": "int4"})
    with pytest.raises(ColumnsError, match="out of range"):
        write_columns(conn, "t", {"i2": np.array([0, -32769])}, types={"i2": "int2"})
    if _pg(conn):  # the catalogue says int2: no need to be told
        with pytest.raises(ColumnsError, match="out of range"):
            write_columns(conn, "t", {"i2": np.array([40000])})


def test_unsupported_dtype_is_refused(conn: Connection) -> None:
    with pytest.raises(ColumnsError, match="not supported"):
        read_columns(conn, "SELECT i8 FROM t", [np.complex128])


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Record the calls of one of dbcolumns' own functions (the COPY codec), passing them through."""
    calls: list[Any] = []
    real: Callable[..., Any] = getattr(dbcolumns, name)

    def spy(*args: Any) -> Any:
        out = real(*args)
        calls.append(out)
        return out

    monkeypatch.setattr(dbcolumns, name, spy)
    return calls


def test_postgresql_goes_through_the_binary_copy_codec(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if PostgreSQL rows moved any other way than as binary COPY built and parsed by numpy."""
    encoded = _spy(monkeypatch, "_encode_chunk")
    decoded = _spy(monkeypatch, "_decode_fixed")
    n = 50_000
    write_columns(
        conn, "t", {"i8": np.arange(n), "f8": np.arange(n) / 4, "d": np.full(n, "2030-01-01", "M8[D]")}
    )
    i8, f8, d = read_columns(conn, "SELECT i8, f8, d FROM t ORDER BY i8", [np.int64, np.float64, "M8[D]"])
    assert i8.tolist() == list(range(n)) and f8[-1] == (n - 1) / 4 and str(d[0]) == "2030-01-01"
    if _pg(conn):
        # binary COPY rows: a field count, then per field a length and the value
        assert b"".join(encoded).startswith(np.array([3, 8], ">i2").tobytes()[:2])
        assert sum(len(chunk) for chunk in encoded) == n * (2 + 3 * 4 + 8 + 8 + 4)
        assert [len(v) for v in decoded[0]] == [n, n, n]
        assert decoded[0][0].dtype == np.dtype(">i8")  # the values were viewed straight off the wire
    else:
        assert encoded == [] and decoded == []


def test_nulls_and_text_after_many_plain_rows(conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader switches to the ragged layout mid-stream, the writer masks bytes out across chunks."""
    ragged = _spy(monkeypatch, "_decode_ragged")
    n = 200_000
    i4 = np.ma.MaskedArray(np.arange(n, dtype=np.int32), mask=np.arange(n) % 1000 == 999)  # first NULL late
    labels = np.array(["workshop", "shared warehouse", "仓库"], dtype=object)
    s = labels[np.arange(n) % 3]
    write_columns(conn, "t", {"i8": np.arange(n), "i4": i4, "s": s})
    got_i4, got_i8 = read_columns(
        conn, "SELECT i4, i8 FROM t ORDER BY i8", [np.int32, np.int64], nulls="mask"
    )
    assert np.array_equal(got_i4.mask, i4.mask) and np.array_equal(got_i4.data[~i4.mask], i4.data[~i4.mask])
    assert np.array_equal(got_i8, np.arange(n))
    (got_s,) = read_columns(conn, "SELECT s FROM t ORDER BY i8", [object])
    assert got_s.tolist() == s.tolist()
    assert len(ragged) == (2 if _pg(conn) else 0)


def test_a_server_error_mid_stream_leaves_a_usable_connection(conn: Connection) -> None:
    if not _pg(conn):
        pytest.skip("SQLite divides by zero into NULL")
    write_columns(conn, "t", {"i8": np.arange(100_000)})
    query = "SELECT 1 / (i8 - 90000) FROM t ORDER BY i8"
    with pytest.raises(psycopg.Error, match="division by zero") as raised:
        read_columns(conn, query, [np.int64])
    assert isinstance(raised.value, psycopg.errors.DivisionByZero)
    conn.rollback()
    assert read_columns(conn, "SELECT 41 + 1", [np.int64])[0].tolist() == [42]


def test_infinite_and_far_dates_on_postgresql(conn: Connection) -> None:
    if not _pg(conn):
        pytest.skip("SQLite has no date type of its own")
    far = np.array(["-4000-01-01", "200000-12-31"], "datetime64[D]")  # beyond Python's datetime.date
    write_columns(conn, "t", {"i8": [1, 2], "d": far})
    (d,) = read_columns(conn, "SELECT d FROM t ORDER BY i8", ["datetime64[D]"])
    assert np.array_equal(d, far)
    with pytest.raises(ColumnsError, match="infinite date"):
        read_columns(conn, "SELECT 'infinity'::date", ["datetime64[D]"])
    with pytest.raises(ColumnsError, match="infinite timestamp"):
        read_columns(conn, "SELECT '-infinity'::timestamp", ["datetime64[us]"])


def test_a_session_and_a_committed_table(backend: Backend) -> None:
    """Through a Session, and through a plain Connection whose commit() must commit the COPY."""
    name = f"dbcolumns_{secrets.token_hex(4)}"
    with backend.engine.begin() as c:
        c.execute(text(f"CREATE TABLE {name} (id bigint, day date)"))
    try:
        with backend.engine.connect() as c:
            write_columns(c, name, {"id": np.arange(3), "day": np.full(3, "2026-11-23", "M8[D]")})
            c.commit()
        with Session(backend.engine) as session:
            ids, days = read_columns(session, f"SELECT id, day FROM {name} ORDER BY id", [np.int64, "M8[D]"])
        assert ids.tolist() == [0, 1, 2] and {str(x) for x in days} == {"2026-11-23"}
    finally:
        with backend.engine.begin() as c:
            c.execute(text(f"DROP TABLE {name}"))


def test_update_columns_sets_each_row_by_id_and_leaves_the_rest(conn: Connection) -> None:
    conn.execute(text("CREATE TEMP TABLE u (id bigint PRIMARY KEY, n integer, s varchar(20), d date)"))
    write_columns(
        conn,
        "u",
        {"id": np.arange(1, 6), "n": np.zeros(5, np.int32), "s": ["a"] * 5, "d": [None] * 5},
    )
    u = Table("u", MetaData(), autoload_with=conn)
    ids = np.array([4, 2, 9], np.int64)  # out of order, and one that matches nothing
    matched = dbcolumns.update_columns(
        conn,
        u,
        ids,
        {
            "n": np.array([40, 20, 90], np.int32),
            "s": ["四", None, "x"],
            "d": np.array(["2026-12-04", "2026-12-02", "2026-12-09"], "datetime64[D]"),
        },
    )
    assert matched == 2
    rows = conn.execute(text("SELECT id, n, s, d FROM u ORDER BY id")).all()
    # SQLite hands a date back as its text through a plain text() query
    assert [(i, n, s, None if d is None else str(d)) for i, n, s, d in rows] == [
        (1, 0, "a", None),
        (2, 20, None, "2026-12-02"),
        (3, 0, "a", None),
        (4, 40, "四", "2026-12-04"),
        (5, 0, "a", None),
    ]


def test_update_columns_names_a_column_the_table_lacks(conn: Connection) -> None:
    conn.execute(text("CREATE TEMP TABLE u (id bigint PRIMARY KEY, n integer)"))
    u = Table("u", MetaData(), autoload_with=conn)
    with pytest.raises(ColumnsError, match="nope"):
        dbcolumns.update_columns(conn, u, np.array([1], np.int64), {"nope": np.array([1])})
