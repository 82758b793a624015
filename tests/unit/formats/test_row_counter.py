"""CsvRowCounter agrees with Python's csv module, with numpy and with the pure-Python fallback.

The landing path's ``rows`` XCom comes from this counter; it must equal what ``csv.reader`` reads
(quoted fields with embedded LF/CRLF, escaped quotes, CRLF/LF endings, a last line without a newline),
whatever the chunk boundaries (every split point is tried).
"""

from __future__ import annotations

import csv
import io
import random

import pytest

from cloudmax_provider.formats import row_counter
from cloudmax_provider.formats.row_counter import CsvRowCounter

np = pytest.importorskip("numpy")  # the test extra installs it; the fallback is forced below

SAMPLES = [
    "",
    "a,b\r\n",
    "a,b",
    "a,b\r\n1,2",
    'a,b\r\n1,"x\r\ny"\r\n2,z\r\n',
    'h\n"a ""quoted"" word",1\n"line\nbreak\nthree",2\n',
    'h\r\n"""",1\r\n"""\r\n""",2\r\n"",3\r\n',
    'h\r\n"ends quoted\r\n"',
    '"first field\nspans",x\r\n',
    "no,quotes,here\r\nat,all,\r\n\r\n",
    '中文,"引號 ""內"" 換行\r\n第二行",é\r\n',
]


def csv_records(text: str) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(text, newline="")))


def count(chunks: list[bytes] | list[str], vectorised: bool) -> int:
    counter = CsvRowCounter(vectorised=vectorised)
    for chunk in chunks:
        counter.feed(chunk)
    return counter.records


def random_csv(seed: int, rows: int = 400) -> str:
    """A CSV written by csv.writer: quotes, commas, CR/LF/CRLF and CJK inside fields."""
    rng = random.Random(seed)
    alphabet = ['"', ",", "\n", "\r\n", "a", "b", "中", " ", "x" * 30]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=rng.choice(["\r\n", "\n"]))
    for _ in range(rows):
        writer.writerow(["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(rng.randint(1, 5))])
    return out.getvalue()


@pytest.mark.parametrize("vectorised", [True, False], ids=["numpy", "pure"])
@pytest.mark.parametrize("text", SAMPLES)
def test_every_split_point_agrees_with_csv(text, vectorised, monkeypatch):
    monkeypatch.setattr(row_counter, "_NUMPY_MIN_CHUNK", 1)  # let numpy see even tiny chunks
    data = text.encode()
    expected = csv_records(text)
    assert count([data], vectorised) == expected
    for i in range(len(data) + 1):
        assert count([data[:i], data[i:]], vectorised) == expected, (text, i)
    for i in range(len(text) + 1):  # the str path (text output in another encoding)
        assert count([text[:i], text[i:]], vectorised) == expected, (text, i)


@pytest.mark.parametrize("seed", range(6))
def test_generated_csv_in_random_chunks_agrees_with_csv_both_ways(seed, monkeypatch):
    text = random_csv(seed)
    data = text.encode()
    expected = csv_records(text)
    assert expected == 400
    rng = random.Random(seed)
    for min_chunk in (1, 4096):
        monkeypatch.setattr(row_counter, "_NUMPY_MIN_CHUNK", min_chunk)
        cuts = sorted(rng.sample(range(1, len(data)), 40))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert count(chunks, True) == count(chunks, False) == expected
        assert count([data], True) == count([data], False) == expected


def test_numpy_and_pure_agree_on_a_big_emulator_body():
    """1 MiB chunks of the emulator's generated report (the kind the benchmark lands)."""
    from cloudmax_provider.testing.rows import launch_rows, report_header, to_csv

    rows = launch_rows(2100199, 1000, *_week(), rows_per_launch=12000, time_format="iso")
    text = to_csv(report_header(2100199), rows)
    data = text.encode()
    chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    assert len(chunks) > 1
    assert count(chunks, True) == count(chunks, False) == csv_records(text)


def _week():
    from datetime import datetime

    return datetime(2024, 1, 1), datetime(2024, 1, 8)


def test_the_fallback_is_used_without_numpy(monkeypatch):
    """No numpy installed (forced): the default counter takes the pure path and counts the same."""
    monkeypatch.setattr(row_counter, "_NUMPY", None)
    counter = CsvRowCounter()
    assert counter._np is None
    counter.feed(b"h\r\n" + b'"a\r\nb",1\r\n' * 2000)
    assert counter.records == 2001
    with pytest.raises(ImportError, match="needs numpy"):
        CsvRowCounter(vectorised=True)


@pytest.mark.parametrize("with_numpy", [True, False], ids=["numpy", "pure"])
def test_progress_counts_in_its_thread_like_csv(monkeypatch, with_numpy):
    """Progress.track over > 4 MiB (so the counting thread runs), with numpy and without (forced)."""
    import threading

    from cloudmax_provider.formats.streams import Progress

    if not with_numpy:
        monkeypatch.setattr(row_counter, "_NUMPY", None)
    threads: set[str] = set()
    real_feed = CsvRowCounter.feed

    def feed(self, chunk):
        threads.add(threading.current_thread().name)
        real_feed(self, chunk)

    monkeypatch.setattr(CsvRowCounter, "feed", feed)
    text = random_csv(7, rows=3000) * 30
    data = text.encode()
    assert len(data) > 4 << 20
    progress = Progress("x")
    out = b"".join(progress.track(data[i : i + 300_000] for i in range(0, len(data), 300_000)))
    assert out == data
    assert progress.rows == csv_records(text) - 1
    assert threads == {"MainThread", "cloudmax-row-counter"}
