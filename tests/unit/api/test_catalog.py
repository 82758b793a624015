"""The catalog knows which reports are campaign state and which are event logs, and what makes a row unique."""

from __future__ import annotations

import pytest

from cloudmax_provider.api.catalog import REPORT_PARTS, ROWS, catalog_markdown, get_report_part


def test_every_report_says_state_or_events():
    assert set(ROWS) == set(REPORT_PARTS)
    assert {p.id for p in REPORT_PARTS.values() if p.is_state} == {20001, 20003, 20005, 30023}
    for part in REPORT_PARTS.values():
        assert part.is_state == (part.kind == "summary")
        assert set(part.row_key) <= set(part.column_names)  # key and event time are documented columns
        assert part.event_time is None or part.event_time in part.column_names
        assert set(ROWS[part.id].hashed) <= set(part.column_names)


@pytest.mark.parametrize(
    ("report", "key", "event_time"),
    [
        ("email_send_summary", ("LaunchID",), None),
        ("read_summary", ("LaunchID", "JobID"), None),
        ("open_details_quick", (), "SubmitTime"),  # no id: a hash
        ("click_details", ("ClickID",), "SubmitTime"),
        ("bounce_details", ("ReturnLogID",), "ReturnTime"),
        ("sent_details", ("EmailID", "LaunchID"), "SendTime"),
        ("sms_failed", (), None),  # no documented columns
    ],
)
def test_row_key_and_event_time(report, key, event_time):
    part = get_report_part(report)
    assert (part.row_key, part.event_time) == (key, event_time)


def test_the_docs_table_names_them():
    table = catalog_markdown()
    assert "| summary | state, key `LaunchID` `JobID` |" in table
    assert "| detail | events at `ReturnTime`, key `ReturnLogID` |" in table
    assert "| detail | events at `SubmitTime`, hash of `LaunchID` `EmailAddress` `IP` `SubmitTime` |" in table
    assert "| detail | events, hash of every cell |" in table


def test_row_ids_tell_rows_apart_and_match_xcom_text():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    opens = get_report_part("open_details_quick")
    at = datetime(2026, 11, 1, 8, tzinfo=ZoneInfo("Asia/Taipei"))
    row = {"LaunchID": 1225, "EmailAddress": "a@example.com", "IP": "10.0.0.1", "SubmitTime": at, "City": "Taipei"}
    same = opens.row_id({**row, "SubmitTime": at.isoformat(), "City": "Tainan"})  # as XCom; City not identifying
    assert opens.row_id(row) == same and same.startswith("sha256:") and len(same) == 7 + 64
    assert opens.row_id({**row, "IP": None}) != same
    assert get_report_part("sent_details").row_id({"EmailID": 7, "LaunchID": 1225}) == "7|1225"
    sms = get_report_part("sms_failed")  # no documented columns: every cell, in the row's order
    assert sms.row_id({"a": "1", "b": ""}) != sms.row_id({"b": "", "a": "1"})
