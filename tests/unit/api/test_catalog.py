"""The catalog knows which reports are campaign state (and their row key) and which are event logs."""

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


@pytest.mark.parametrize(
    ("report", "key", "event_time"),
    [
        ("email_send_summary", ("LaunchID",), None),
        ("read_summary", ("LaunchID", "JobID"), None),
        ("open_details_quick", (), "SubmitTime"),
        ("bounce_details", (), "ReturnTime"),
        ("sent_details", (), "SendTime"),
        ("sms_failed", (), None),  # no documented columns
    ],
)
def test_row_key_and_event_time(report, key, event_time):
    part = get_report_part(report)
    assert (part.row_key, part.event_time) == (key, event_time)


def test_the_docs_table_names_them():
    table = catalog_markdown()
    assert "| summary | state, key `LaunchID` `JobID` |" in table
    assert "| detail | events at `ReturnTime` |" in table
