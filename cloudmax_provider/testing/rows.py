"""Deterministic report rows for the Report.aspx emulator (pure Python: no aiohttp, no I/O).

Every cell is a function of ``(ReportPartID, LaunchID, StartTime, EndTime, row index)`` and the
formatting settings, so a test can compute, with :func:`generate_rows`, exactly what the emulator
serves. Rows of one LaunchID do not depend on the other LaunchIDs of the request (a split link file
holds the same rows as the matching slice of the combined file).

Values are typed by the catalog's rule (:func:`cloudmax_provider.api.catalog.column_type`): ints, floats
with four decimals (rates, latitude, longitude), times inside ``[StartTime, EndTime)`` in the chosen
``time_format``; text is deliberately hostile: commas, double quotes, embedded newlines, CJK, quoted
e-mail local parts, IPv6, phone numbers with leading zeros, and some empty cells.

Reports whose columns the spec does not document (SMS 11001-11004, open details 21001) get an invented
but plausible header, :data:`INVENTED_COLUMNS`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from cloudmax_provider.api.catalog import REMOVAL_STATUSES, ColumnType, column_type, get_report_part

__all__ = [
    "INVENTED_COLUMNS",
    "LANGUAGE_ENGLISH",
    "LANGUAGE_TRADITIONAL_CHINESE",
    "REMOVAL_STATUSES_ZH",
    "TIME_FORMATS",
    "ColumnSpecError",
    "apply_custom_columns",
    "format_time",
    "generate_rows",
    "launch_rows",
    "parse_column_spec",
    "report_header",
    "to_csv",
]

LANGUAGE_TRADITIONAL_CHINESE = 17
LANGUAGE_ENGLISH = 117
TIME_FORMATS = ("iso", "zh-TW", "en-US")

#: 31033 Status values in Traditional Chinese (ReportCharacterSetID=17), same order as REMOVAL_STATUSES.
REMOVAL_STATUSES_ZH: tuple[str, ...] = (
    "無效名單",
    "重複名單",
    "已知退信名單",
    "取消訂閱名單",
    "黑名單",
    "白名單",
    "過濾名單",
)

#: Headers invented for the reports whose columns the spec does not document.
INVENTED_COLUMNS: dict[int, tuple[str, ...]] = {
    11001: ("LaunchID", "MobileNumber", "CustomerID", "ExternRefNum", "Message", "ErrorCode", "Reason", "SendTime"),
    11002: ("LaunchID", "MobileNumber", "CustomerID", "ExternRefNum", "Carrier", "Message", "SendTime"),
    11003: ("LaunchID", "MobileNumber", "CustomerID", "ExternRefNum", "Carrier", "SendTime", "DeliveredTime"),
    11004: (
        "LaunchID",
        "MobileNumber",
        "CustomerID",
        "ExternRefNum",
        "Carrier",
        "Status",
        "Reason",
        "SendTime",
        "ReportTime",
    ),
    21001: (
        "LaunchID",
        "EmailID",
        "CustomerID",
        "EmailAddress",
        "ExternRefNum",
        "ForwardLayer",
        "SubmitTime",
        "OS",
        "Client",
        "IP",
        "City",
        "State",
        "Country",
        "CountryISOCode",
        "ISP",
        "Latitude",
        "Longitude",
        "Language",
        "UserAgent",
        "AcceptLanguage",
    ),
}


class ColumnSpecError(ValueError):
    """A CustomColName value names no column of the report, or a column twice."""


def report_header(report_part_id: int) -> list[str]:
    """The full default header of a report: the catalog's columns, or the invented ones."""
    part = get_report_part(report_part_id)
    if part.columns is None:
        return list(INVENTED_COLUMNS[part.id])
    return list(part.column_names)


def format_time(value: datetime, time_format: str = "iso") -> str:
    """Format a time like the server: ``iso`` ``yyyy-MM-dd HH:mm:ss``; ``zh-TW`` .NET zh-TW
    ``yyyy/M/d 上午 hh:mm:ss``; ``en-US`` ``M/d/yyyy h:mm:ss AM``."""
    if time_format == "iso":
        return value.strftime("%Y-%m-%d %H:%M:%S")
    h12 = value.hour % 12 or 12
    if time_format == "zh-TW":
        ampm = "上午" if value.hour < 12 else "下午"
        return f"{value.year}/{value.month}/{value.day} {ampm} {h12:02d}:{value.minute:02d}:{value.second:02d}"
    if time_format == "en-US":
        ampm = "AM" if value.hour < 12 else "PM"
        return f"{value.month}/{value.day}/{value.year} {h12}:{value.minute:02d}:{value.second:02d} {ampm}"
    raise ValueError(f"time_format={time_format!r}; use one of {TIME_FORMATS}")


# --- hostile but plausible text ------------------------------------------------------------------

_SUBJECTS = (
    '雙11 限時優惠, "加碼"\n第二行',
    "Weekly newsletter",
    "春季特賣 Spring Sale — 全館 5 折",
    'Re: "Quote" test, again',
    "會員專屬：您的 12 月帳單",
    "",
)
_JOB_NAMES = ("2024 週年慶 EDM #3", "Newsletter, June", "VIP 會員通知", 'Test "A/B" 分眾', "月報")
_ERROR_MSGS = ("", "", "", 'SMTP 421, "try again later"', "DNS 查詢失敗\r\nretry")
_EMAIL_USERS = ("amy.chen", "john_doe", "王小明", "o'brien", "mail+tag", '"odd,name"')
_EMAIL_DOMAINS = ("example.com", "example.com.tw", "mail.example.org", "例子.台灣")
_PLACES = (
    ("Taiwan", "TW", "Taipei City", "Taipei", 25.0330, 121.5654),
    ("台灣", "TW", "新北市", "板橋區", 25.0140, 121.4672),
    ("United States", "US", "California", "San Jose, CA", 37.3382, -121.8863),
    ("Japan", "JP", "", "Tokyo", 35.6762, 139.6503),
    ("", "", "", "", 0.0, 0.0),
)
_ISPS = ("Chunghwa Telecom", "HiNet, Inc.", "中華電信", "Taiwan Mobile", "")
_OSES = ("Windows 10", "iOS 17", "Android 14", "macOS 14", "")
_CLIENTS = ("Chrome 120", "Outlook 2016", "Safari", 'Gmail "image proxy"', "")
_LANGS = ("zh-TW", "en-US", "ja", "")
_ACCEPT_LANGS = ("zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7", "en-US,en;q=0.9", "ja-JP", "")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile",
    "Microsoft Office/16.0 (Microsoft Outlook 16.0.5; Pro)",
    "",
)
_LINK_NAMES = ("立即購買", "Unsubscribe", 'Read more, "now"', "查看詳情\n(新視窗)", "")
_URLS = (
    "https://shop.example.com/p?id=1&utm_source=edm&utm_medium=email",
    "https://www.example.com.tw/活動/雙11?ref=edm",
    "https://example.org/unsubscribe?e=abc%40example.com",
)
_RETURNS = (
    ("550", "User unknown", "5.1.1", "550 5.1.1 <x@example.com>: Recipient address rejected:\r\nUser unknown"),
    ("452", "Mailbox full", "4.2.2", '452 4.2.2 Mailbox full, "quota exceeded"'),
    ("554", "Message rejected, spam", "5.7.1", "554 5.7.1 信件被拒絕"),
    ("421", "", "4.4.2", ""),
)
_CARRIERS = ("中華電信", "台灣大哥大", "遠傳電信", "Other, unknown")
_SMS_TEXTS = ("【Cloudmax】您的驗證碼 123456", '雙11 限時優惠, "加碼"\n詳見 https://ex.tw/a', "Hi, test", "")
_SMS_REASONS = ("號碼錯誤", "Timeout, no DLR", 'Carrier said "busy"', "")


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _cell(report_part_id: int, name: str, rng: random.Random, ctx: dict[str, object]) -> str:
    """One generated cell for column ``name``; ``ctx`` shares per-row facts (place, counts)."""
    launch = int(str(ctx["launch"]))
    index = int(str(ctx["index"]))
    start = ctx["start"]
    end = ctx["end"]
    assert isinstance(start, datetime) and isinstance(end, datetime)
    time_format = str(ctx["time_format"])
    place = ctx["place"]
    assert isinstance(place, tuple)
    if name == "LaunchID":
        return str(launch)
    if name == "JobID":
        return str(launch * 100 + 1)
    if name in ("ClickID", "EmailID", "ReturnLogID"):
        return str(launch * 100_000 + index * 7 + (3 if name == "EmailID" else 1))
    if report_part_id == 31033 and name == "Status":
        statuses = REMOVAL_STATUSES_ZH if ctx["language"] == LANGUAGE_TRADITIONAL_CHINESE else REMOVAL_STATUSES
        return statuses[rng.randrange(len(statuses))]
    if report_part_id == 11004 and name == "Status":
        return rng.choice(("Undelivered", "Expired", "Rejected"))
    ctype = column_type(report_part_id, name)
    if ctype is ColumnType.INT:
        if name == "ErrorCode" or name == "Status":
            return rng.choice(("0", "0", "0", "2", "11"))
        if name == "ResendStep":
            return str(rng.randrange(0, 3))
        if name.endswith("Size"):
            return str(rng.randrange(0, 2_000_000))
        return str(rng.randrange(0, 50_000))
    if ctype is ColumnType.FLOAT:
        if name == "Latitude":
            return "" if not place[0] else f"{place[4] + rng.uniform(-0.05, 0.05):.4f}"
        if name == "Longitude":
            return "" if not place[0] else f"{place[5] + rng.uniform(-0.05, 0.05):.4f}"
        return f"{rng.uniform(0, 1):.4f}"
    if ctype is ColumnType.DATETIME:
        if name in ("ScheduleTime", "F2FirstOpenTime", "F2LastOpenTime") and rng.random() < 0.3:
            return ""
        seconds = max(1, int((end - start).total_seconds()))
        return format_time(start + timedelta(seconds=rng.randrange(seconds)), time_format)
    return _text(name, rng, ctx, launch, index, place)


def _text(
    name: str, rng: random.Random, ctx: dict[str, object], launch: int, index: int, place: tuple[object, ...]
) -> str:
    n = launch * 1000 + index
    simple: dict[str, Callable[[], str]] = {
        "Subject": lambda: rng.choice(_SUBJECTS),
        "JobName": lambda: rng.choice(_JOB_NAMES),
        "RefNumber": lambda: f"R{launch}-{rng.randrange(100):02d}",
        "LastErrorMsg": lambda: rng.choice(_ERROR_MSGS),
        "CustomerID": lambda: "" if rng.random() < 0.1 else f"C{n:08d}",
        "ExternRefNum": lambda: rng.choice(("", f"REF-{n}", f"訂單,{n}", f'"{n}"')),
        "ForwardLayer": lambda: rng.choice(("0", "0", "1", "2")),
        "EmailAddress": lambda: f"{rng.choice(_EMAIL_USERS)}{index}@{rng.choice(_EMAIL_DOMAINS)}",
        "IP": lambda: rng.choice(
            (
                f"203.0.113.{rng.randrange(1, 255)}",
                f"198.51.100.{rng.randrange(1, 255)}",
                f"2001:db8::{rng.randrange(1, 65535):x}",
                "",
            )
        ),
        "Country": lambda: str(place[0]),
        "CountryISOCode": lambda: str(place[1]),
        "State": lambda: str(place[2]),
        "City": lambda: str(place[3]),
        "ISP": lambda: rng.choice(_ISPS),
        "OS": lambda: rng.choice(_OSES),
        "Client": lambda: rng.choice(_CLIENTS),
        "Language": lambda: rng.choice(_LANGS),
        "UserAgent": lambda: rng.choice(_USER_AGENTS),
        "AcceptLanguage": lambda: rng.choice(_ACCEPT_LANGS),
        "LinkName": lambda: rng.choice(_LINK_NAMES),
        "NewUrl": lambda: rng.choice(_URLS),
        "MobileNumber": lambda: f"09{rng.randrange(10**8):08d}",
        "Carrier": lambda: rng.choice(_CARRIERS),
        "Message": lambda: rng.choice(_SMS_TEXTS),
    }
    ret = ctx["return"]
    assert isinstance(ret, tuple)
    if name == "Reason":
        return rng.choice(_SMS_REASONS) if ctx["kind"] == "sms" else str(ret[1])
    if name == "ReturnCode":
        return str(ret[0])
    if name == "DSNStatus":
        return str(ret[2])
    if name == "ReturnMsg":
        return str(ret[3])
    gen = simple.get(name)
    return gen() if gen else f"{name}-{n}"


def _summary_fixups(report_part_id: int, header: Sequence[str], row: list[str], rng: random.Random) -> None:
    """Make 30023's counts and rates consistent (A1..A6)."""
    if report_part_id != 30023:
        return
    col = {name: i for i, name in enumerate(header)}
    a1 = rng.randrange(1000, 50_000)
    a2 = rng.randrange(0, a1 // 10)
    a3 = a1 - a2
    a4 = rng.randrange(0, a3 // 2)
    a6 = rng.randrange(0, max(1, a4 // 3))
    a5 = a6 + rng.randrange(0, a6 + 1)
    values = {
        "EmailCount": a1 + rng.randrange(0, 50),
        "AcceptCount": a1,
        "ReturnEmailCount": a2,
        "SendSuccessEmailCount": a3,
        "OpenEmailCount": a4,
        "ClickCount": a5,
        "ClickEmailCount": a6,
    }
    for k, v in values.items():
        row[col[k]] = str(v)
    rates = {
        "ReturnEmailRate": a2 / a1,
        "SendSuccessRate": a3 / a1,
        "OpenEmailRate": a4 / a3,
        "SendSuccessClickRate": a6 / a3,
        "OpenEmailClickRate": (a6 / a4) if a4 else 0.0,
    }
    for k, r in rates.items():
        row[col[k]] = f"{r:.4f}"


def launch_rows(
    report_part_id: int,
    launch_id: int,
    start: datetime,
    end: datetime,
    *,
    rows_per_launch: int = 5,
    time_format: str = "iso",
    language: int | None = None,
) -> list[list[str]]:
    """All rows (every column of :func:`report_header`) of one LaunchID."""
    part = get_report_part(report_part_id)
    header = report_header(part.id)
    count = 1 if part.kind == "summary" else max(0, rows_per_launch)
    rows: list[list[str]] = []
    for index in range(count):
        rng = random.Random(_seed(part.id, launch_id, start.isoformat(), end.isoformat(), index))
        ctx: dict[str, object] = {
            "launch": launch_id,
            "index": index,
            "start": start,
            "end": end,
            "time_format": time_format,
            "language": language,
            "place": rng.choice(_PLACES),
            "return": rng.choice(_RETURNS),
            "kind": "sms" if part.id in (11001, 11002, 11003, 11004) else "email",
        }
        row = [_cell(part.id, name, rng, ctx) for name in header]
        _summary_fixups(part.id, header, row, rng)
        rows.append(row)
    return rows


def parse_column_spec(value: str) -> tuple[str, str]:
    """``"Col"`` -> ``("Col", "Col")``; ``"Col,NewName"`` -> ``("Col", "NewName")`` (spaces trimmed)."""
    col, sep, new = value.partition(",")
    col = col.strip()
    new = new.strip() if sep else col
    return col, new or col


def apply_custom_columns(
    header: Sequence[str], rows: Iterable[Sequence[str]], specs: Sequence[str | tuple[str, str]] | None
) -> tuple[list[str], list[list[str]]]:
    """Select/order/rename columns like CustomColName; names are case-sensitive.

    Raises :class:`ColumnSpecError` on an unknown column or a column selected twice.
    """
    if not specs:
        return list(header), [list(r) for r in rows]
    pairs = [parse_column_spec(s) if isinstance(s, str) else (s[0], s[1]) for s in specs]
    index = {name: i for i, name in enumerate(header)}
    seen: set[str] = set()
    picks: list[int] = []
    for col, _new in pairs:
        if col not in index:
            raise ColumnSpecError(f"unknown column {col!r}")
        if col in seen:
            raise ColumnSpecError(f"column {col!r} selected twice")
        seen.add(col)
        picks.append(index[col])
    return [new for _c, new in pairs], [[r[i] for i in picks] for r in rows]


def generate_rows(
    report_part_id: int,
    launch_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    columns: Sequence[str | tuple[str, str]] | None = None,
    rows_per_launch: int = 5,
    time_format: str = "iso",
    language: int | None = None,
    header_changes: str = "",
) -> tuple[list[str], list[list[str]]]:
    """Header and rows the server serves for a request (LaunchIDs in request order, deduplicated)."""
    part = get_report_part(report_part_id)
    rows: list[list[str]] = []
    for launch in dict.fromkeys(launch_ids):
        rows.extend(
            launch_rows(
                part.id, launch, start, end, rows_per_launch=rows_per_launch, time_format=time_format, language=language
            )
        )
    return change_columns(*apply_custom_columns(report_header(part.id), rows, columns), header_changes)


def change_columns(header: list[str], rows: list[list[str]], changes: str) -> tuple[list[str], list[list[str]]]:
    """Cloudmax changing a report's columns: comma-separated ``"+Name"`` (a column appended, its cells ``"v1"``,
    ``"v2"`` ...) and ``"-Name"`` (a column dropped), e.g. ``"+F3OpenCount,-OS"``.

    >>> change_columns(["a", "b"], [["1", "2"]], "+c,-a")
    (['b', 'c'], [['2', 'v1']])
    """
    for change in filter(None, (c.strip() for c in changes.split(","))):
        sign, name = change[0], change[1:]
        if sign == "+" and name:
            header, rows = [*header, name], [[*row, f"v{i}"] for i, row in enumerate(rows, 1)]
        elif sign == "-" and name in header:
            at = header.index(name)
            header, rows = header[:at] + header[at + 1 :], [row[:at] + row[at + 1 :] for row in rows]
        elif sign != "-":
            raise ValueError(f"header_changes: {change!r} is neither '+Name' nor '-Name'")
    return header, rows


def to_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """RFC 4180 CSV text with CRLF line ends (minimal quoting: fields with , " CR or LF)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
