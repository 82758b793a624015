r"""A local emulator of Cloudmax's ``/WebAPI/Report.aspx`` (aiohttp in a background thread).

Use it from tests (or the ``cloudmax_emulator`` pytest fixture)::

    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    with CloudmaxEmulator() as emu:
        r = requests.get(emu.endpoint_url, params={"ManagerLoginName": "demo", ...})
        header, rows = emu.expected_rows(2100199, [1234], "2024-01-01 00:00:00", "2024-01-02 00:00:00")

or from a shell: ``python -m cloudmax_provider.testing.emulator --port 18080``.

Choices made where the spec is open (all of them are covered by ``tests/unit/testing/test_emulator.py``):

* **Fields.** GET query, POST ``application/x-www-form-urlencoded`` and ``multipart/form-data`` are
  merged (query first); names are case-insensitive. A field given several times (in any case) has
  its values joined with ``,`` like ASP.NET's ``Request.Params`` (so ``LaunchID=1&LaunchID=2`` is
  ``1,2``). Values are stripped of surrounding whitespace, except ManagerPassword (compared as sent).
  Unknown fields are ignored; ``CustomColName0`` or ``CustomColName100`` and up are 102.
* **XML parameters.** ``XmlRequest`` (a field), ``XmlReqUrl`` (http(s) URL on a loopback host,
  path ending in ``.xml``, fetched by the emulator with a 5 s timeout) and ``XmlReqFilePath``
  (a multipart upload whose file name ends in ``.xml``) supply fields as the children of the root
  element (any root name; element text is stripped). Request fields override XML ones. XML is parsed
  with lxml with entities unresolved, no network and no DTD; an XML declaring ``encoding="utf-16"``
  whose bytes are UTF-8 is accepted. A broken XML, a non-loopback or non-``.xml`` URL, an unreachable
  URL, or an upload not named ``*.xml`` is 102 Incorrect Request.
* **Validation order and codes.** method (HTTP 405 + ``Allow``) -> XML parameters (102) ->
  ManagerLoginName/ManagerPassword absent (102) -> wrong credentials (100, ErrorMsg
  ``Login failed: incorrect ManagerLoginName or ManagerPassword``; login case-insensitive, password
  case-sensitive) -> ReportPartID absent (102), not an integer or not in the catalog (103) -> not
  licensed (1000) -> LaunchID absent or not a comma list of positive ints (102; duplicates are
  dropped, order kept) -> StartTime/EndTime absent (102), unparsable (110), EndTime not after
  StartTime (102) -> ResponseMode not 0-3 (102) -> ReportCharacterSetID not 17/117 (102) ->
  CustomColName unknown or duplicate column (102). ``fail_with="exception"`` gives 100 ``Exception``.
* **Times accepted.** ``yyyy-MM-dd HH:mm:ss`` (24-hour), also ``yyyy-MM-dd HH:mm``, ``yyyy-MM-dd``
  (midnight), a ``T`` instead of the space and one-digit month/day/hour. Anything else is 110.
* **ReportCharacterSetID.** 17 or 117 are accepted for every report but honoured only by 31033: with
  17 its ``Status`` cells are Chinese (:data:`~cloudmax_provider.testing.rows.REMOVAL_STATUSES_ZH`),
  with 117 or absent English (``REMOVAL_STATUSES``). Headers never change language.
* **CustomColName.** ``CustomColName`` (no number) comes first, then ``CustomColName1..99`` by number;
  each is ``Col`` or ``Col,NewName``; column names are case-sensitive; the field names are not.
* **Data.** See :mod:`cloudmax_provider.testing.rows` (deterministic per ReportPartID, LaunchID and
  window; detail reports ``rows_per_launch`` rows per LaunchID, summaries one; invented headers for
  11001-11004 and 21001).
* **Answers.** XML ``<ROOT><ERRORCODE/><ERRORMSG/><DOWNLOADLINK/>...</ROOT>`` UTF-8, Content-Type
  ``text/xml; charset=utf-8``; errors carry one empty DOWNLOADLINK. Mode 0 writes
  ``<unc_root>/<token>/<name>.csv`` and answers ``\\<unc_server>\<unc_share>\<token>\<name>.csv``;
  mode 1 answers ``<link_base_url>/WebAPI/ReportFiles/<token>/<name>.csv`` (GET/HEAD/Range via
  aiohttp's FileResponse, ``text/csv; charset=...``); mode 2 the CSV as the body
  (``text/csv; charset=...``); mode 3 the CSV with ``Content-Disposition: attachment;
  filename="<name>.csv"; filename*=UTF-8''<中文報表名>_<LaunchIDs>.csv``. ``<name>`` is
  ``Report_<ReportPartID>_<LaunchIDs joined by ->_<yyyyMMddHHmmss start>_<end>`` (more than four
  LaunchIDs: ``<first>-and-<n>-more``). ``split_links`` makes one link (file) per LaunchID in modes 0/1
  only; modes 2/3 always send one CSV.
* **Redirects.** ``ReferUrl`` always wins; else ``SuccessfulUrl`` (or the spec's ``SuccessfulUr``)
  when ErrorCode is 0 and ``FailedUrl`` when it is > 0. A 302 is sent instead of the XML in modes 0/1
  and for errors in every mode; in modes 2/3 a success ignores them and sends the report. Keywords
  (case-insensitive): ``%omisquerystring%`` = ``ErrorCode=..&ErrorMsg=..&DownloadLink=..`` (several links
  joined by ``,``), ``%errorcode%``, ``%errormsg%``, ``%reportpath%`` (the link(s)), ``%launchid%`` (the
  normalised LaunchID list), and ``%userid%``, ``%customerid%``, ``%jobid%`` which Report.aspx never
  returns, so they become empty. Values are URL-encoded.
* **Faults.** A request matches when ``fault_paths`` is ``all`` or names its kind (``api`` =
  Report.aspx, ``links`` = ``/WebAPI/ReportFiles/...``). With ``fail_first = N > 0`` only the first N
  matching requests (counted since ``reset()`` or since ``fail_first`` last changed) are faulted; with
  ``fail_first = 0`` every matching request is. A faulted request waits ``delay`` and then gets
  ``truncate_body`` / ``drop_mid_body`` applied to its normal answer, or, when neither is set and
  ``fail_first > 0``, the ``fail_with`` answer instead of the normal one: an HTTP status, ``"reset"``
  (the connection aborted), ``"exception"`` (ErrorCode 100 "Exception") or ``"error:<code>"`` (that
  ErrorCode with the spec's message, e.g. ``"error:110"``).
* **Latency.** ``latency`` (seconds, default 0): every Report.aspx request waits that long before it is
  answered, as a real server works on a report (a setting, not a fault: ``fail_first`` does not count it).
  ``max_in_flight`` is the most requests the emulator was handling at once since ``reset()`` or
  ``clear_log()`` (counted as requests arrive and are answered, not timed).
* **Faults by window.** ``fail_start_windows`` (pairs of times, ``yyyy-MM-dd HH:mm:ss``): a valid
  Report.aspx request whose StartTime falls in one of these ``[from, to)`` windows gets HTTP ``fail_with``
  (503 unless that is an int status) — only the first ``fail_start_first`` such requests when it is > 0
  (counted since ``reset()``), every one when it is 0. Independent of ``fail_first`` and ``fault_paths``.
* **Big reports.** ``big_report_bytes > 0`` replaces the report body of modes 1-3 and the files of
  mode 0 by a cached CSV of at least that many bytes (whole rows) for the ReportPartID, regardless of
  LaunchID, window or CustomColName; see :meth:`CloudmaxEmulator.big_report_info`. ``big_report_ragged``
  (``"start"``, ``"middle"``, ``"end"``, or several comma-separated) cuts the last cell off that data record
  of the big report: one record with a cell fewer than the header, as a record cut short (bench/parquet.py
  ``--ragged``).
* **Link redirects.** With ``link_redirect_to`` set (a base URL), a link file first answers 302 to the
  same path under that base (with ``?hop=1``), as a file server handing off to a CDN would.
* **Hostile answers.** ``answer_with`` replaces every Report.aspx answer (after recording the request):
  ``"empty"`` (200, no body), ``"html"`` (200, an HTML error page), ``"foreign_xml"`` (200, XML that is
  not the spec's: no ERRORCODE), ``"xxe"`` (an external entity naming ``/etc/passwd``),
  ``"entity_expansion"`` (a "billion laughs" DTD), ``"oversized_xml"`` (a spec answer padded past
  2 MiB with DOWNLOADLINK elements). ``attachment_filename`` replaces mode 3's file name in
  Content-Disposition and ``link_filename`` the file name of mode 1 links (``"../../x.csv"`` is sent
  %-encoded as one path segment).
* **Extras.** :meth:`CloudmaxEmulator.serve_file` serves bytes under ``/static/<name>`` (e.g. an
  ``.xml`` for XmlReqUrl); ``link_requests``, ``unc_root_path`` and ``unc_to_local()`` help tests.
* **XmlRequest refused.** ``refuse_xml_request`` makes Report.aspx ignore ``XmlRequest``, ``XmlReqUrl`` and
  ``XmlReqFilePath`` (a server whose Web.config leaves them off): the credentials are then absent (102).
* **Replay.** ``emulator.replay = Replay(load_capture(DIR))`` (the CLI's ``--replay DIR``) answers every
  request from a probe's capture instead (:mod:`~cloudmax_provider.testing.emulator.replay`).
* **reset()** restores the settings the emulator was constructed with (library defaults when none
  were given), in place on the same ``settings`` object, and forgets the log, the fault count, prepared
  link files, pending mode-0 writes and ``serve_file`` files (the big-report cache is kept).
"""

from __future__ import annotations

from cloudmax_provider.testing.emulator.app import CloudmaxEmulator
from cloudmax_provider.testing.emulator.data import parse_time
from cloudmax_provider.testing.emulator.routes import xml_params as _xml_params  # noqa: F401 - for the CLI, tests
from cloudmax_provider.testing.emulator.settings import (
    API_PATH,
    LINK_PREFIX,
    LOGIN_FAILED_MSG,
    STATIC_PREFIX,
    EmulatorSettings,
    RecordedRequest,
)

# The parts: app (the server, its log and dispatch), settings (switches, fixed strings, shared shapes),
# routes (Report.aspx), faults (the fault catalogue), data (report bodies, big reports), links (link files),
# replay (answers from a capture), cli (the command line; this package never imports it).
__all__ = [
    "API_PATH",
    "LINK_PREFIX",
    "LOGIN_FAILED_MSG",
    "STATIC_PREFIX",
    "CloudmaxEmulator",
    "EmulatorSettings",
    "RecordedRequest",
    "parse_time",
]
