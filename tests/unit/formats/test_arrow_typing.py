"""Typed formats through Arrow's streaming CSV reader (issue 18): the same rows as XCom, whatever the body.

Each test lands a body through the real landing path (``land_object``: encoder -> ``atomic.write`` into a
real file) and compares it with the XCom path's rows for the same bytes (``read_typed`` + ``type_row``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TZ = ZoneInfo("Asia/Taipei")
HEADER = "LaunchID,AcceptCount,SendTime,CompleteTime,OpenCount\r\n"  # report 20003: int, int, time, time, int


def _source(body: bytes, pieces: int = 3):
    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.formats.streams import ReportStream

    size = max(1, len(body) // pieces)

    class Source:
        def __enter__(self):
            return ReportStream(iter([body[i : i + size] for i in range(0, len(body), size)]), Encoding("utf_8"), "t")

        def __exit__(self, *exc):
            return False

    return Source


def _xcom_rows(body: bytes, report_part_id: int = 20003) -> list[dict]:
    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.formats.cells import read_typed, to_jsonable

    typer, records = read_typed([body], Encoding("utf_8"), get_report_part(report_part_id), TZ)
    return [to_jsonable(typer.type_row(cells)) for cells in records]


class _Messages(logging.Handler):
    """The messages of the landing's logger (Airflow's logging set-up may detach pytest's caplog handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"


LOG = _Messages()
logging.getLogger("tests.arrow_typing").addHandler(LOG)


def _land(tmp_path, body: bytes, fmt: str, report_part_id: int = 20003, **options):
    """Land ``body`` through land_object; the written rows as XCom would hold them."""
    LOG.text = ""
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.formats.cells import to_jsonable
    from cloudmax_provider.formats.writers import OutputFormat, RowTyping
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_object

    path = tmp_path / f"out.{fmt}"
    output = OutputFormat(fmt, typing=RowTyping(get_report_part(report_part_id), TZ), **options)
    logger = logging.getLogger("tests.arrow_typing")
    stats = land_object(CloudmaxHook(), [_source(body)], path.as_uri(), None, "utf-8", logger, output=output)
    if fmt == "parquet":
        rows = [to_jsonable(r) for r in pq.read_table(path).to_pylist()]
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert stats.rows == len(rows)
    return rows


RAGGED = (
    HEADER
    + "1,2,2026-10-01 10:00:00,,3\r\n"
    + "4,5\r\n"  # too few cells: padded with empty ones
    + "6,7,2026-10-01 11:00:00,2026-10-01 12:00:00,8,extra,cells\r\n"  # too many: dropped
    + "9,10,2026-10-02 00:00:00,,11\r\n"
)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_ragged_records_get_the_xcom_rule_in_place(cloudmax_emulator, cloudmax_conn, tmp_path, fmt):
    rows = _land(tmp_path, RAGGED.encode(), fmt)
    expected = _xcom_rows(RAGGED.encode())
    assert [r["LaunchID"] for r in expected] == [1, 4, 6, 9]  # the XCom path: padded, cut, in order
    assert expected[1] == {"LaunchID": 4, "AcceptCount": 5, "SendTime": None, "CompleteTime": None, "OpenCount": None}
    assert rows == expected
    assert "A record has 2 cells where the header has 5" in LOG.text  # said once, with the record
    assert "2 records had another number of cells" in LOG.text
    assert not list(tmp_path.glob(".*"))  # one pass: nothing written twice, nothing left behind


def _ragged_at(where: str, rows: int = 50_000) -> str:
    """``rows`` whole records with one ragged record at the start, in the middle (a short one, then a long
    one) or at the end (the last record cut short, no line end)."""
    records = [f"{i},{i % 97},2026-10-01 10:00:00,,{i % 7}\r\n" for i in range(rows)]
    at = {"start": 0, "middle": rows // 2, "end": rows - 1}[where]
    records[at] = f"{at},{at % 97}" + ("" if where == "end" else "\r\n")
    if where == "middle":
        records[at + 1] = records[at + 1].replace("\r\n", ",x,y\r\n")
    return HEADER + "".join(records)


@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_one_ragged_record_among_many_blocks_stays_in_place(cloudmax_emulator, cloudmax_conn, tmp_path, fmt, where):
    """Across many Arrow blocks, a ragged record (first, in the middle, or a last one cut short) is fitted
    where it stands: the rows equal XCom's, in order."""
    body = _ragged_at(where).encode()
    rows = _land(tmp_path, body, fmt)
    expected = _xcom_rows(body)
    assert len(rows) == len(expected) == 50_000
    assert rows == expected
    assert "A record has 2 cells where the header has 5" in LOG.text


def test_ragged_records_are_numbered_by_record_not_by_line():
    """Quoted newlines and blank records before a ragged record keep it in place (Arrow numbers records)."""
    from cloudmax_provider.formats.arrow_typing import _Body

    rest = '"a\nb",1\r\n\r\n""\r\nc\r\n"d\n\ne",2\r\nf,3,extra\r\n'
    got = [list(r.values()) for batch in _Body(iter([rest.encode()]), 2, 1 << 16).batches() for r in batch.to_pylist()]
    assert got == [["a\nb", "1"], ["c", None], ["d\n\ne", "2"], ["f", "3"]]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_blank_records_are_skipped_without_falling_back(cloudmax_emulator, cloudmax_conn, tmp_path, fmt):
    body = (HEADER + "1,2,2026-10-01 10:00:00,,3\r\n\r\n" + '""\r\n' + "4,5,,,6\r\n").encode()
    rows = _land(tmp_path, body, fmt)
    assert rows == _xcom_rows(body) and [r["LaunchID"] for r in rows] == [1, 4]
    assert "cells where the header has" not in LOG.text  # blank records are not ragged ones


def test_misfits_are_null_in_parquet_and_kept_as_text_in_jsonl_as_in_xcom(cloudmax_emulator, cloudmax_conn, tmp_path):
    body = (HEADER + "1,n/a,2026-10-01 10:00:00,,3\r\n2,1,not a time,,4\r\n").encode()
    expected = _xcom_rows(body)
    assert expected[0]["AcceptCount"] == "n/a" and expected[1]["SendTime"] == "not a time"
    assert _land(tmp_path, body, "jsonl") == expected
    parquet = _land(tmp_path, body, "parquet")
    assert (parquet[0]["AcceptCount"], parquet[1]["SendTime"]) == (None, None)
    assert parquet[0]["SendTime"] == expected[0]["SendTime"] == "2026-10-01T10:00:00+08:00"


def test_row_groups_are_exactly_batch_size_across_blocks(cloudmax_emulator, cloudmax_conn, tmp_path, monkeypatch):
    import cloudmax_provider.formats.arrow_typing as arrow_typing

    monkeypatch.setattr(arrow_typing, "BLOCK_SIZE", 256)  # many blocks of a few records each
    body = (HEADER + "".join(f"{i},{i},2026-10-01 10:00:00,,{i}\r\n" for i in range(100))).encode()
    rows = _land(tmp_path, body, "parquet", batch_size=7)
    assert rows == _xcom_rows(body)
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [7] * 14 + [2]


def test_json_lines_equal_json_dumps_of_the_xcom_rows():
    """Escapes, control characters, integral floats, microseconds, offsets of a zone with DST, nulls."""
    from cloudmax_provider.formats.arrow_typing import json_lines

    texts = ['a"b', "c\\d", "e\nf", "\tg\r", "\x01h", '雙11 "加碼"\n第二行', "", None, "\u2028x", "\b\f"]
    floats = [0.5, 3.0, 1e16, 1.5e-7, -0.0, float("inf"), 123456789.0, None, 2.5, 1e-3]
    for zone in ("Asia/Taipei", "America/New_York"):
        tz = ZoneInfo(zone)
        times = [datetime(2026, 3, 8, 1, 59, tzinfo=tz), datetime(2026, 11, 1, 1, 30, tzinfo=tz), None]
        times += [datetime(2026, 10, 3, 1, 2, 3, 500000, tzinfo=tz)] * 7
        table = pa.table(
            {
                "s": pa.array(texts),
                "t": pa.array(times, pa.timestamp("us", tz=zone)),
                "f": pa.array(floats),
                "i": pa.array([1, None, 3, 4, 5, 6, 7, 8, 9, 10], pa.int64()),
            }
        )
        lines = json_lines(table).decode("utf-8").split("\n")
        assert lines[-1] == ""
        expected = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()} for r in table.to_pylist()
        ]
        got = [json.loads(line) for line in lines[:-1]]
        assert got == expected
        assert [[type(v) for v in r.values()] for r in got] == [[type(v) for v in r.values()] for r in expected]
    no_nulls = pa.table(
        {"s": ["x"], "t": pa.array([datetime(2026, 1, 1, tzinfo=TZ)], pa.timestamp("us", "Asia/Taipei"))}
    )
    assert json_lines(no_nulls) == b'{"s":"x","t":"2026-01-01T00:00:00+08:00"}\n'


def test_json_lines_are_the_same_bytes_without_numpy(monkeypatch):
    """With numpy the pieces of each line are gathered by one ``take``; without it they are joined by a kernel:
    the same bytes, nulls, escapes and daylight saving time included."""
    import sys

    from cloudmax_provider.formats.arrow_typing import json_lines

    tz = ZoneInfo("America/New_York")
    times = [datetime(2026, 3, 8, 1, 59, tzinfo=tz), None, datetime(2026, 11, 1, 1, 30, 0, 5, tzinfo=tz)] * 3
    table = pa.table(
        {
            "s": pa.array(['a"b', None, "\x01\n", "", "x\\y", None, "z", "雙11", None]),
            "t": pa.array(times, pa.timestamp("us", tz=tz.key)),
            "i": pa.array([None, 2, 3, None, 5, 6, None, 8, 9], pa.int64()),
            "f": pa.array([1.0, None, 0.5, 2.0, None, float("nan"), 3.25, None, 1e20]),
            "n": pa.array(["k"] * 9),
        }
    )
    with_numpy = json_lines(table)
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails
    assert json_lines(table) == with_numpy
    assert json_lines(table.slice(2, 5)) == b"".join(with_numpy.splitlines(keepends=True)[2:7])
    assert json_lines(table.slice(0, 0)) == b""


@pytest.mark.parametrize(
    "texts",
    [
        ["2026-01-02 03:04:05", "1999-12-31 23:59:59"],
        ["2026-01-02 03:04:05", None],
        ["2026-02-30 00:00:00", "2026-01-02 03:04:05"],  # an impossible date
        ["2026-01-02 23:59:60"],  # second 60
        ["2026-01-02T03:04:05", "2026-01-02 03:04:05"],
        ["2026-1-2 03:04:05"],
        [" 2026-01-02 03:04:05 ", "2026-01-02 03:04:05"],
        ["2026/01/02 03:04:05"],
        ["2026-01-02 03:04:0x"],
        ["2026-03-08 02:30:00"],  # not a time in New York (daylight saving time starts)
    ],
)
def test_iso_times_are_typed_as_strptime_types_them(monkeypatch, texts):
    """The ISO-8601 cast (with numpy) gives what strptime gives (without), or leaves the column to it."""
    import sys

    from cloudmax_provider.api.catalog import ColumnType
    from cloudmax_provider.formats.arrow_typing import vectorised_column

    tz = ZoneInfo("America/New_York")
    arrow = pa.timestamp("us", tz=tz.key)
    fast = vectorised_column(ColumnType.DATETIME, pa.array(texts, pa.string()), arrow, tz)
    monkeypatch.setitem(sys.modules, "numpy", None)
    slow = vectorised_column(ColumnType.DATETIME, pa.array(texts, pa.string()), arrow, tz)
    assert (fast is None and slow is None) or fast.equals(slow)


def test_header_split_and_empty_body():
    from cloudmax_provider.formats.arrow_typing import split_header

    header, rest = split_header([b'a,"b\r\n', b'c",d\r\n1,2,3'])
    assert header == ["a", "b\r\nc", "d"] and b"".join(rest) == b"1,2,3"
    assert split_header([b"", b"  "])[0] is None
    assert split_header([b"a,b"])[0] == ["a", "b"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_body_cut_mid_stream_is_retried_from_scratch(cloudmax_emulator, cloudmax_conn, tmp_path, fmt):
    """The cut surfaces through Arrow's reader thread as the transport's own error, so the hook retries it."""
    from cloudmax_provider.formats.writers import OutputFormat, RowTyping
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_object

    s = cloudmax_emulator.settings
    s.big_report_bytes = 3 << 20  # several blocks: the cut comes mid-stream
    s.fault_paths, s.fail_first, s.drop_mid_body = "api", 1, True
    _path, _size, rows = cloudmax_emulator.big_report_info(21002)
    hook = CloudmaxHook()
    request = hook.build_request(21002, [1], "2026-10-01 00:00:00", "2026-10-02 00:00:00", response_mode=3)
    dest = tmp_path / f"r.{fmt}"
    output = OutputFormat(fmt, typing=RowTyping.for_request(request, TZ))
    stats = land_object(hook, hook.sources(request), dest.as_uri(), None, "utf-8", output=output)
    assert len(cloudmax_emulator.api_requests) == 2  # the cut attempt, then the whole one
    written = pq.read_metadata(dest).num_rows if fmt == "parquet" else len(dest.read_bytes().splitlines())
    assert stats.rows == written == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]  # the cut attempt left nothing


@pytest.mark.parametrize(
    "texts",
    [["a", ""], ["a", None], ["", None], [None, None], ["a", "b"], [], ["x", None, "", "y"] * 5],
)
def test_empty_strings_are_told_from_nulls_with_and_without_numpy(monkeypatch, texts):
    import sys

    from cloudmax_provider.formats.arrow_typing import _has_empty

    expected = "" in texts
    array = pa.array(texts, pa.string())
    assert _has_empty(array) is expected
    if len(texts) > 3:
        assert _has_empty(array.slice(3)) is ("" in texts[3:])
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert _has_empty(array) is expected


def test_json_lines_of_all_null_and_sliced_string_columns():
    """A column not served (all null, as the schema contract's 'ignore' fills it) and slices of escaped text."""
    from cloudmax_provider.formats.arrow_typing import _needs_escapes, json_lines

    table = pa.table({"gone": pa.nulls(3, pa.string()), "s": pa.array(['a"b', "c", "d"])})
    assert json_lines(table) == b'{"gone":null,"s":"a\\"b"}\n{"gone":null,"s":"c"}\n{"gone":null,"s":"d"}\n'
    assert json_lines(table.slice(1)) == b'{"gone":null,"s":"c"}\n{"gone":null,"s":"d"}\n'
    assert not _needs_escapes(pa.nulls(3, pa.string())) and not _needs_escapes(table.column("s").chunk(0).slice(1))


@pytest.mark.parametrize("zone", ["America/New_York", "Africa/Monrovia", "Australia/Lord_Howe"])
def test_a_block_of_several_offsets_writes_each_line_as_a_block_of_one_offset(zone):
    """Daylight saving time, half-hour and sub-minute (local mean time) offsets in one block: each line is the
    line its row gives alone (one offset), fractions and nulls included."""
    from cloudmax_provider.formats.arrow_typing import json_lines

    utc = [datetime(1850, 1, 1), datetime(1971, 6, 1, 12), datetime(1973, 1, 1, 0, 0, 0, 5), None]
    utc += [datetime(2026, 1, 15, 3, 4, 5), datetime(2026, 7, 15, 3, 4, 5, 500000), datetime(2026, 3, 8, 7)]
    column = pa.array(utc, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz=zone))
    table = pa.table({"t": column, "n": pa.array(range(len(utc)), pa.int64())})
    lines = json_lines(table).splitlines(keepends=True)
    assert lines == [json_lines(table.slice(i, 1)) for i in range(len(utc))]
    assert (
        json.loads(lines[4])["t"]
        == datetime(2026, 1, 15, 3, 4, 5, tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone)).isoformat()
    )


def test_every_short_escape_in_one_column_is_written_as_json_dumps_writes_it():
    """No control character without a short escape: the kernels replace each character present, once."""
    from cloudmax_provider.formats.arrow_typing import json_lines

    texts = ['a\\"b', '\\\\n"', "\b\f\n\r\t", 'q"', None, "雙\\11\n", "plain", "\\"]
    lines = json_lines(pa.table({"s": pa.array(texts)}))
    assert (
        lines == "".join(json.dumps({"s": t}, ensure_ascii=False, separators=(",", ":")) + "\n" for t in texts).encode()
    )
