"""The report catalog: every ReportPartID of Report.aspx, as one table of data.

Each row of ``_TABLE`` is a report: id, Chinese name (as the spec writes it), English
name, a short slug users may pass instead of the id, ``summary`` or ``detail``, and the
columns the spec documents, in order, one ``Name 說明`` per line (``None`` where the
spec lists none: such reports are passed through as text with the header as sent).

Column types follow one rule (:func:`column_type`), not a per-cell choice:

* int: ``*Count``, ``*Size``, ``ResendStep``, ``ErrorCode``, ``Status`` of 20001 and the
  numeric ids ``LaunchID``, ``JobID``, ``ClickID``, ``EmailID``, ``ReturnLogID``;
* float: ``*Rate``, ``Latitude``, ``Longitude``;
* datetime (in the account's timezone): ``*Time``;
* text: everything else, ``CustomerID`` and ``ExternRefNum`` included (customers' own keys).

The spec breaks ``RemoveUnsubscribeCount`` over two lines (``RemoveUnsubscribeCoun`` /
``t``); the catalog has the whole name.

Example::

    >>> part = get_report_part("removals")
    >>> part.id, part.column_names[:2]
    (31033, ('CustomerID', 'EmailAddress'))
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

#: The account's clock when the connection names none: the platform is Taiwan's, its examples are in
#: Taipei time. The one place it is written (the form schema in ``__init__`` repeats it as data, since that
#: module imports nothing).
DEFAULT_TIMEZONE = "Asia/Taipei"

__all__ = [
    "REMOVAL_STATUSES",
    "REPORT_PARTS",
    "ROWS",
    "Column",
    "ColumnType",
    "ReportPart",
    "catalog_markdown",
    "column_type",
    "get_report_part",
]


class ColumnType(enum.StrEnum):
    """How a column's text is typed in rows handed to Python (and XCom)."""

    INT = "int"
    FLOAT = "float"
    DATETIME = "datetime"
    TEXT = "text"


# (id, name_zh, name_en, slug, kind, columns: "Name 說明" per line, or None if undocumented)
_TABLE: tuple[tuple[int, str, str, str, str, str | None], ...] = (
    (11001, "簡訊發送失敗下載報表", "SMS send failures", "sms_failed", "detail", None),
    (11002, "簡訊已送至電信單位的細節", "SMS handed to carriers", "sms_sent", "detail", None),
    (11003, "紀載客戶已收到簡訊的細節", "SMS delivered to customers", "sms_delivered", "detail", None),
    (11004, "紀載客戶未收到簡訊的細節", "SMS not delivered to customers", "sms_undelivered", "detail", None),
    (
        20001,
        "Email 總寄送報表",
        "Email send summary",
        "email_send_summary",
        "summary",
        """
        LaunchID 任務編號
        Subject 主旨
        Status 寄送管理狀態碼
        ErrorCode 寄送管理錯誤碼
        LastErrorMsg 錯誤訊息
        JobName 任務名稱
        RefNumber 任務參考號碼
        ResendStep 已重送次數
        ContentSize 郵件內容大小
        AttachmentSize 附件檔案大小
        ResourceSize 重送內容大小
        ExtraFileSize -
        AttachmentCount 附件檔案數
        ResourceCount 參考檔案
        ExtraFileCount 額外參考檔案
        PageCount 郵件頁數
        LayerCount 網頁追蹤數
        TotalLinkCount 連結數
        TrackLinkCount 郵件追蹤連結
        TotalListCount 遞交名單總數
        ListCount 已處理名單數
        RecipCount 名單總數
        EmailCount (總計)有效名單數
        InvalidEmailCount 移除無效名單
        AdjustEmailCount 矯正郵件數
        RemoveUnsubscribeCount 移除取消訂閱名單數
        RemoveDuplicateCount 移除重複名單數
        RemoveListProcessCount 移除過濾名單數
        RemoveReturnCount 移除已知退信名單數
        RemoveBlackCount 移除黑名單數
        RemoveWhiteCount 移除白名單數
        MakeCount 系統產生郵件檔案數
        SendCount 系統嘗試送至發信機郵件
        AcceptCount (送至發送機處理發送小計)有效郵件
        SampleCount 保留欄位
        SubmitTime 寄送遞交時間
        ScheduleTime 預約發送時間
        ExpireTime 追蹤截止時間
        SendTime 產信第一封至發信機時間
        CompleteTime 完成產信時間
        DoneTime 產信最後一封至發信機時間
    """,
    ),
    (
        20003,
        "Email 開啟報表",
        "Email open summary",
        "email_open_summary",
        "summary",
        """
        LaunchID 任務編號
        AcceptCount 成功發送郵件客戶
        SendTime 保留欄位
        CompleteTime 保留欄位
        OpenCount 開啟郵件人數
        F1OpenCount 第一層轉寄開信次數
        F2OpenCount 第二層轉寄開信次數
        F1OpenEmailCount 第一層轉寄開郵件人數
        F2OpenEmailCount 第二層轉寄開郵件人數
        F1FirstOpenTime 第一層首次閱信時間
        F2FirstOpenTime 第二層首次閱信時間
        F1LastOpenTime 第一層最後閱信時間
        F2LastOpenTime 第二層最後閱信時間
        F1ForwardEmailCount 第一層轉寄次數
        F2ForwardEmailCount 第二層轉寄次數
        F1ReturnEmailCount 第一層成功轉寄次數
        F2ReturnEmailCount 第二層成功轉寄次數
        F3ReturnEmailCount 第三層成功轉寄次數
    """,
    ),
    (
        20005,
        "Email 點選報表",
        "Email click summary",
        "email_click_summary",
        "summary",
        """
        LaunchID 任務編號
        AcceptCount 成功發送郵件數
        OpenCount 開啟郵件人數
        F1OpenCount 第一層轉寄開信次數
        F2OpenCount 第二層轉寄開信次數
        OpenEmailCount 開啟郵件人數
        F1OpenEmailCount 第一層轉寄開郵件人數
        F2OpenEmailCount 第二層轉寄開郵件人數
        ForwardEmailCount 轉寄郵件次數
        F1ForwardEmailCount 第一層轉寄次數
        F2ForwardEmailCount 第二層轉寄次數
        ForwardOutRecipCount 保留欄位
        F1ReturnCount 第一層成功轉寄次數
        F2ReturnCount 第二層成功轉寄次數
        F3ReturnCount 第三層成功轉寄次數
        ClickCount 點選次數
        ClickEmailCount 點選郵件人數
        FirstClickTime 首次點選時間
        LastClickTime 最近點選時間
    """,
    ),
    (21001, "開信細節下載報表", "Open details", "open_details", "detail", None),
    (
        2100199,
        "開信細節下載報表快捷版",
        "Open details (quick)",
        "open_details_quick",
        "detail",
        """
        LaunchID 任務編號
        EmailAddress 電子郵件
        IP IP位置
        Country 國家
        State 省/州
        City 市/縣
        ISP 網路提供者
        OS 作業系統
        Client 瀏覽器
        Language 語系
        SubmitTime 點選時間
    """,
    ),
    (
        21002,
        "點選細節下載報表",
        "Click details",
        "click_details",
        "detail",
        """
        ClickID 點選編號
        EmailID 電子郵件編號
        CustomerID 顧客編號
        EmailAddress 電子郵件
        ExternRefNum 參考號碼
        ForwardLayer 類型
        LinkName 連結名稱
        NewUrl 連結網址
        SubmitTime 點選時間
        OS 作業系統
        Client 瀏覽器
        IP IP位置
        City 市/縣
        State 省/州
        Country 國家
        CountryISOCode 國家代碼
        ISP 網路提供者
        Latitude 緯度
        Longitude 經度
        Language 語系
        UserAgent 瀏覽器資訊
        AcceptLanguage 支援語系
    """,
    ),
    (
        21003,
        "退信細節下載報表",
        "Bounce details",
        "bounce_details",
        "detail",
        """
        ReturnLogID 退信紀錄編號
        EmailID 郵件編號
        CustomerID 顧客編號
        EmailAddress 電子郵件
        ExternRefNum 參考號碼
        ForwardLayer 類型
        ReturnCode 退信碼
        Reason 退信原因
        DSNStatus DSN狀態
        ReturnMsg 退信狀態訊息
        ReturnTime 退信時間
    """,
    ),
    (
        21032,
        "成功發送郵件下載報表",
        "Delivered e-mail details",
        "sent_details",
        "detail",
        """
        LaunchID 任務編號
        EmailID 郵件編號
        CustomerID 顧客編號
        EmailAddress 電子郵件
        ForwardLayer 類型
        SendTime 發送時間
        ExternRefNum 參考號碼
        Subject 主旨
    """,
    ),
    (
        30023,
        "綜合閱信報表",
        "Combined read summary",
        "read_summary",
        "summary",
        """
        SubmitTime 發送時間
        LaunchID 任務編號
        JobID 寄送編號
        JobName 任務名稱
        EmailCount 郵件總數
        AcceptCount 系統送出郵件(A1)
        ReturnEmailCount 退信(A2)
        SendSuccessEmailCount 成功發送數(A3)
        ReturnEmailRate 退信率(A2/A1)
        SendSuccessRate 成功發送率(A3/A1)
        OpenEmailCount 開啟郵件人數(A4)
        OpenEmailRate 開啟率(A4/A3)
        ClickCount 點選次數(A5)
        ClickEmailCount 點選郵件人數(A6)
        SendSuccessClickRate 點選率(A6/A3)
        OpenEmailClickRate 開啟郵件點選率(A6/A4)
    """,
    ),
    (
        31033,
        "移除下載報表",
        "Removals",
        "removals",
        "detail",
        """
        CustomerID 顧客編號
        EmailAddress 電子郵件
        ExternRefNum 參考號碼
        ForwardLayer 類型
        Status 移除原因
        SubmitTime 移除時間
    """,
    ),
)

#: 31033's ``Status`` (移除原因) values, numbered as the spec numbers them.
REMOVAL_STATUSES: tuple[str, ...] = (
    "Invalid",
    "RemoveDuplicate",
    "RemoveReturn",
    "RemoveUnsubscribe",
    "RemoveBlackList",
    "RemoveWhiteList",
    "RemoveListProcess",
)


@dataclass(frozen=True)
class RowModel:
    """What a report's rows are: campaign ``state`` or an ``events`` log, and what makes a row unique.

    ``key``: the columns that make a row unique, where the spec gives them (an id: ``ClickID``, ``ReturnLogID``;
    ``EmailID`` + ``LaunchID``; a campaign's ``LaunchID`` (+ ``JobID``)). Without one, a row is identified by
    the hash of its ``hashed`` columns (``()``: every cell), see :meth:`ReportPart.row_id`.
    """

    kind: str  # "state" | "events"
    key: tuple[str, ...] = ()
    event_time: str | None = None
    hashed: tuple[str, ...] = ()


#: What each report's rows are. A summary report is campaign **state**: one row per key (``LaunchID``, and
#: ``JobID`` for 30023, whose rows are a campaign's sends), whose numbers keep growing until the campaign's
#: tracking ends (20001's ``ExpireTime``); a landing keeps each key's latest row. Every other report is an
#: **event** log: one row per event, at its event-time column (``None`` where the spec documents no columns).
#: Opens (2100199) and removals (31033) carry no id: a recipient's open at an instant from an address, and a
#: recipient's removal for a reason at an instant, are one event each.
ROWS: dict[int, RowModel] = {
    11001: RowModel("events"),
    11002: RowModel("events"),
    11003: RowModel("events"),
    11004: RowModel("events"),
    20001: RowModel("state", ("LaunchID",)),
    20003: RowModel("state", ("LaunchID",)),
    20005: RowModel("state", ("LaunchID",)),
    21001: RowModel("events"),
    2100199: RowModel("events", (), "SubmitTime", ("LaunchID", "EmailAddress", "IP", "SubmitTime")),
    21002: RowModel("events", ("ClickID",), "SubmitTime"),
    21003: RowModel("events", ("ReturnLogID",), "ReturnTime"),
    21032: RowModel("events", ("EmailID", "LaunchID"), "SendTime"),
    30023: RowModel("state", ("LaunchID", "JobID")),
    31033: RowModel("events", (), "SubmitTime", ("CustomerID", "EmailAddress", "Status", "SubmitTime")),
}

_INT_IDS = frozenset({"LaunchID", "JobID", "ClickID", "EmailID", "ReturnLogID", "ResendStep", "ErrorCode"})


def column_type(report_part_id: int, name: str) -> ColumnType:
    """The type of column ``name`` of report ``report_part_id`` by the catalog's one rule."""
    if name.endswith(("Count", "Size")) or name in _INT_IDS or (name == "Status" and report_part_id == 20001):
        return ColumnType.INT
    if name.endswith("Rate") or name in ("Latitude", "Longitude"):
        return ColumnType.FLOAT
    if name.endswith("Time"):
        return ColumnType.DATETIME
    return ColumnType.TEXT


@dataclass(frozen=True)
class Column:
    """A documented report column: its exact (case-sensitive) name, type and the spec's description."""

    name: str
    type: ColumnType
    description: str


@dataclass(frozen=True)
class ReportPart:
    """One ReportPartID of the catalog."""

    id: int
    name_zh: str
    name_en: str
    slug: str
    kind: str  # "summary" or "detail"
    columns: tuple[Column, ...] | None  # None: the spec documents no columns

    @property
    def is_state(self) -> bool:
        """Whether the rows are campaign state (one row per :attr:`row_key`) rather than an event log.

        >>> get_report_part(30023).is_state, get_report_part(21002).is_state
        (True, False)
        """
        return ROWS[self.id].kind == "state"

    @property
    def row_key(self) -> tuple[str, ...]:
        """The columns that make a row unique where the spec gives them (``()``: none; see :meth:`row_id`).

        >>> get_report_part("read_summary").row_key, get_report_part("click_details").row_key
        (('LaunchID', 'JobID'), ('ClickID',))
        """
        return ROWS[self.id].key

    @property
    def event_time(self) -> str | None:
        """The event-time column of an event log (``None`` for state, or where the spec documents no columns).

        >>> get_report_part("bounce_details").event_time
        'ReturnTime'
        """
        return ROWS[self.id].event_time

    def row_id(self, row: Mapping[str, Any]) -> str:
        """What identifies a typed row (a dict, as XCom rows are): its :attr:`row_key` values joined by ``|``;
        without a key, ``sha256:`` and the SHA-256 of the UTF-8 text of its identifying columns (the catalog's
        ``hashed`` columns, else every cell, in the row's order), each as XCom gives it (a time in ISO-8601
        with its offset, an empty cell as ``""``) and joined by the unit separator ``\\x1f``.

        >>> get_report_part("click_details").row_id({"ClickID": 42, "EmailID": 7})
        '42'
        >>> get_report_part("open_details_quick").row_id({"LaunchID": 1, "EmailAddress": "a@x", "IP": None,
        ...     "SubmitTime": "2026-11-01T08:00:00+08:00", "City": "Taipei"})[:15]
        'sha256:0551cfa9'
        """
        model = ROWS[self.id]
        if model.key:
            return "|".join(str(row.get(name, "")) for name in model.key)
        names = model.hashed or tuple(row)
        text = "\x1f".join(_cell_text(row.get(name)) for name in names)
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns or ())

    @property
    def supports_language(self) -> bool:
        """ReportCharacterSetID is honoured for 31033 only (the spec: 目前僅支援移除下載報表)."""
        return self.id == 31033

    def column(self, name: str) -> Column | None:
        """The documented column ``name`` (case-sensitive), or None."""
        return next((c for c in self.columns or () if c.name == name), None)

    def type_of(self, name: str) -> ColumnType:
        """Type of a column by name; a renamed or undocumented column is typed by the same rule."""
        col = self.column(name)
        return col.type if col else column_type(self.id, name) if self.columns else ColumnType.TEXT


def _parse_columns(report_id: int, text: str | None) -> tuple[Column, ...] | None:
    if text is None:
        return None
    cols = []
    for line in text.strip().splitlines():
        name, _, desc = line.strip().partition(" ")
        cols.append(Column(name, column_type(report_id, name), "" if desc == "-" else desc))
    return tuple(cols)


REPORT_PARTS: dict[int, ReportPart] = {
    rid: ReportPart(rid, zh, en, slug, kind, _parse_columns(rid, cols)) for rid, zh, en, slug, kind, cols in _TABLE
}
_BY_SLUG = {p.slug: p for p in REPORT_PARTS.values()}


@cache
def _choices() -> str:
    return ", ".join(f"{p.id} ({p.slug})" for p in REPORT_PARTS.values())


def get_report_part(value: int | str | ReportPart) -> ReportPart:
    """Look a report up by id (``31033``, ``"31033"``) or slug (``"removals"``).

    Raises :class:`~cloudmax_provider.exceptions.CloudmaxConfigError` (a ``ValueError``) naming
    ``report_part_id`` and listing the valid choices; callers let it through as it is.
    """
    if isinstance(value, ReportPart):
        return value
    key = value.strip() if isinstance(value, str) else value
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    part = (
        REPORT_PARTS.get(key) if isinstance(key, int) and not isinstance(key, bool) else _BY_SLUG.get(str(key).lower())
    )
    if part is None:
        near = _nearest(str(key).lower())
        hint = f"did you mean {near}? " if near else ""
        # imported here: the catalog is read by the emulator, which does not import Airflow
        from cloudmax_provider.exceptions import CloudmaxConfigError

        raise CloudmaxConfigError(
            f"report_part_id={value!r} is not a Cloudmax ReportPartID; {hint}use one of: {_choices()}"
        )
    return part


def _nearest(key: str) -> str | None:
    """The id(s) or slug closest to a mistyped one, as ``'click_details' (21002)``, or None.

    An id is a number typed digit by digit: the ids fewest edits away (a digit changed, added or dropped),
    at most two, then those sharing the longest first digits; every one left is named.

    >>> _nearest("click_detail"), _nearest("2100198"), _nearest("210021"), _nearest("zzz")
    ("'click_details' (21002)", "'2100199' (open_details_quick)", "'21002' (click_details)", None)
    >>> _nearest("21009")
    "'21001' (open_details), '21002' (click_details) or '21003' (bounce_details)"
    """
    import difflib

    if key.isdigit():
        rank = {rid: (_edits(key, str(rid)), -_shared_start(key, str(rid))) for rid in REPORT_PARTS}
        best = min(rank.values())
        ids = [f"'{rid}' ({REPORT_PARTS[rid].slug})" for rid, r in rank.items() if r == best]
        if best[0] > 2:
            return None
        return ids[0] if len(ids) == 1 else ", ".join(ids[:-1]) + " or " + ids[-1]
    slugs = difflib.get_close_matches(key.replace("-", "_").replace(" ", "_"), list(_BY_SLUG), n=1, cutoff=0.6)
    return f"{slugs[0]!r} ({_BY_SLUG[slugs[0]].id})" if slugs else None


def _shared_start(a: str, b: str) -> int:
    """How many first characters ``a`` and ``b`` share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: the fewest characters changed, added or dropped to turn ``a`` into ``b``."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def catalog_markdown() -> str:
    """The catalog as the docs' Markdown table (``python -m cloudmax_provider.api.catalog``; docs/catalog.md
    includes it): id, slug, names, kind, what the rows are (state and its key, or events and their time),
    and every column with its type when not text."""
    lines = [
        "| ReportPartID | slug | report | kind | rows | columns (type when not text) |",
        "|---|---|---|---|---|---|",
    ]
    for part in REPORT_PARTS.values():
        if part.columns is None:
            columns = "not documented by the spec: passed through as text, header as sent"
        else:
            columns = ", ".join(
                f"`{c.name}`" if c.type is ColumnType.TEXT else f"`{c.name}` {c.type.value}" for c in part.columns
            )
        lines.append(
            f"| {part.id} | `{part.slug}` | {part.name_zh} ({part.name_en}) | {part.kind} | {_rows_cell(part)} "
            f"| {columns} |"
        )
    return "\n".join(lines) + "\n"


def _rows_cell(part: ReportPart) -> str:
    """The catalog table's ``rows`` cell: ``state, key `LaunchID` `JobID```, ``events at `SubmitTime`, key
    `ClickID``` or ``events ..., hash of `LaunchID` ...``."""
    kind = "state" if part.is_state else f"events at `{part.event_time}`" if part.event_time else "events"
    if part.row_key:
        return f"{kind}, key " + " ".join(f"`{c}`" for c in part.row_key)
    hashed = ROWS[part.id].hashed
    return f"{kind}, hash of " + (" ".join(f"`{c}`" for c in hashed) if hashed else "every cell")


def _cell_text(value: Any) -> str:
    """A typed cell as :meth:`ReportPart.row_id` hashes it: as XCom gives it, an empty cell as ``""``."""
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


if __name__ == "__main__":  # pragma: no cover
    print(catalog_markdown(), end="")
