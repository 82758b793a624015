"""A hostile (or broken) server: entities, huge answers, file names and links that try to escape.

Expected: no local file read, bounded memory, a clean typed error; files stay inside the destination;
links to other hosts or schemes are not followed unless the connection allows the host, and never
get a credential.
"""

from __future__ import annotations

import tracemalloc

import pytest

from cloudmax_provider.exceptions import CloudmaxLinkError, CloudmaxResponseError
from tests.reliability.conftest import FIGURES, files_under, run_report

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("xxe", "document type declaration"),
        ("entity_expansion", "document type declaration|amplification|unreadable XML"),
        ("oversized_xml", "XML document of more than 1048576 bytes"),
    ],
)
@pytest.mark.parametrize("mode", [1, 2])
def test_hostile_xml_is_refused_unread(cloudmax_emulator, cloudmax_conn, tmp_path, answer, message, mode):
    run_report(response_mode=mode)  # warm up: imports and caches are not what is measured
    cloudmax_emulator.clear_log()
    cloudmax_emulator.settings.answer_with = answer
    tracemalloc.start()
    try:
        with pytest.raises(CloudmaxResponseError, match=message) as info:
            run_report(destination=f"file://{tmp_path}/r.csv", response_mode=mode)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "root:" not in str(info.value) and "/bin/" not in str(info.value)  # /etc/passwd was not read
    assert peak < 16 << 20, peak  # bounded: the oversized answer is not read past 1 MiB
    assert files_under(tmp_path) == [] and len(cloudmax_emulator.api_requests) == 1
    FIGURES["hostile answers contained"] += 1


ESCAPING_NAMES = ["../../escape.csv", "/etc/escape.csv", "C:\\Windows\\escape.csv", "..", "..%2F..%2Fescape.csv"]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_attachment_file_name_cannot_choose_where_it_lands(cloudmax_emulator, cloudmax_conn, tmp_path, name):
    cloudmax_emulator.settings.attachment_filename = name
    lake = tmp_path / "a" / "b" / "lake"
    run_report(destination=f"file://{lake}/r.csv", response_mode=3)
    assert files_under(tmp_path) == ["a/b/lake/r.csv"]  # the name the server gave plays no part
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook()
    with hook.open_report(hook.build_request(21002, 1, "2026-11-01", "2026-11-02", response_mode=3)) as stream:
        assert stream.filename.strip() not in ("", ".", "..") and not set(stream.filename) & set("/\\:")
    FIGURES["hostile file names kept inside the destination"] += 1


# ".." itself cannot be served over HTTP (clients remove dot segments); safe_name's doctest covers it.
@pytest.mark.parametrize("name", [*(n for n in ESCAPING_NAMES if n != ".."), "C:evil.csv"])
def test_link_file_name_stays_under_the_prefix(cloudmax_emulator, cloudmax_conn, tmp_path, name):
    cloudmax_emulator.settings.link_filename = name
    prefix = tmp_path / "x" / "y" / "lake"
    written = run_report(destination=f"file://{prefix}/", response_mode=1, one_object_per_link=True)[0]
    (only,) = files_under(tmp_path)
    assert only.startswith("x/y/lake/") and "/" not in only.removeprefix("x/y/lake/"), only
    assert written == [f"file://{prefix}/{only.removeprefix('x/y/lake/')}"]
    FIGURES["hostile file names kept inside the destination"] += 1


@pytest.mark.parametrize(
    "link_base",
    ["http://169.254.169.254", "http://10.1.2.3:8080", "http://evil.example", "ftp://127.0.0.1", "file://"],
)
def test_a_link_to_another_host_or_scheme_is_not_followed(cloudmax_emulator, cloudmax_conn, tmp_path, link_base):
    cloudmax_emulator.settings.link_base_url = link_base
    with pytest.raises(CloudmaxLinkError, match=r"allowed_link_hosts|neither an http"):
        run_report(destination=f"file://{tmp_path}/r.csv", response_mode=1)
    assert cloudmax_emulator.link_requests == [] and files_under(tmp_path) == []
    FIGURES["links and redirects refused"] += 1


@pytest.mark.parametrize("target", ["http://localhost:{port}", "file:///etc", "ftp://127.0.0.1:{port}"])
def test_a_redirect_to_another_host_or_scheme_is_not_followed(cloudmax_emulator, cloudmax_conn, tmp_path, target):
    cloudmax_emulator.settings.link_redirect_to = target.format(port=cloudmax_emulator.port)
    with pytest.raises(CloudmaxLinkError, match=r"allowed_link_hosts|not an http|neither an http"):
        run_report(destination=f"file://{tmp_path}/r.csv", response_mode=1)
    assert all("hop" not in r.query for r in cloudmax_emulator.link_requests)  # the target was never asked
    assert files_under(tmp_path) == []
    FIGURES["links and redirects refused"] += 1


@pytest.mark.parametrize("via", ["link", "redirect"])
def test_an_allowed_other_host_gets_no_credential(cloudmax_emulator, cloudmax_conn, tmp_path, via):
    other = f"http://localhost:{cloudmax_emulator.port}"
    cloudmax_conn(allowed_link_hosts=["localhost"], method="GET")
    if via == "link":
        cloudmax_emulator.settings.link_base_url = other
    else:
        cloudmax_emulator.settings.link_redirect_to = other
    run_report(destination=f"file://{tmp_path}/r.csv", response_mode=1)
    links = cloudmax_emulator.link_requests
    assert links and files_under(tmp_path) == ["r.csv"]
    for r in links:
        assert set(r.fields) <= {"hop"} and not r.files  # hop=1 is the emulator's redirect mark, no field else
        assert not {"authorization", "cookie", "proxy-authorization"} & {k.lower() for k in r.headers}
        assert "demo-password" not in repr(r)
    FIGURES["allowed links fetched without credentials"] += 1
