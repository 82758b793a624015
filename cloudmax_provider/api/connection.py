"""The ``cloudmax`` connection, read into plain settings (pure; shared by hook, operator and trigger).

Connection fields: host = base URL (required: ``https://api.itpison.com`` is Cloudmax's production
API; ``http://127.0.0.1:18080`` works, as does a bare host with port and ``scheme`` extra),
port = the base URL's port (optional; when both give one they must agree; the UI's Test button needs it
stored), login = ManagerLoginName, password = ManagerPassword. Extras (a JSON object; an unknown key is
refused, so a misspelled ``"timout"`` is never silently ignored):

==================  ==========================  ===============================================
extra               default                     meaning
==================  ==========================  ===============================================
endpoint            ``/WebAPI/Report.aspx``     path of Report.aspx
method              ``POST``                    ``GET`` for servers whose Web.config demands it
request_format      ``fields``                  ``xml`` (XmlRequest) or ``xml_file`` (XmlReqFilePath)
timezone            ``Asia/Taipei``             the account's clock (IANA name)
timeout             ``60``                      seconds per HTTP request (connect and read)
verify              ``true``                    TLS verification: true/false or a CA bundle path
attempts            ``4``                       attempts for transient failures (the first included)
retry_min_wait      ``1``                       first back-off, seconds
retry_max_wait      ``30``                      longest back-off, seconds
allowed_link_hosts  ``[]``                      other hosts whose DOWNLOADLINKs may be fetched
scheme              (none)                      for a host without ``http(s)://`` (port 443: https; else refused)
==================  ==========================  ===============================================

``retries``, the old name of ``attempts`` (it always counted attempts), is still read with a deprecation
warning; giving both is refused.

Example (environment)::

    AIRFLOW_CONN_CLOUDMAX_DEFAULT='{"conn_type": "cloudmax", "host": "http://127.0.0.1:18080",
        "login": "demo", "password": "demo-password", "extra": {"timezone": "Asia/Taipei"}}'
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cloudmax_provider.api.catalog import DEFAULT_TIMEZONE
from cloudmax_provider.api.request import Credentials, get_timezone
from cloudmax_provider.api.retry import RetrySettings
from cloudmax_provider.exceptions import CloudmaxConfigError

DEFAULT_HOST = "https://api.itpison.com"  # only a hint in messages: a connection must name its host
#: The extras a ``cloudmax`` connection understands; anything else is refused, naming the nearest one.
EXTRAS = frozenset(
    {
        "endpoint",
        "method",
        "request_format",
        "timezone",
        "timeout",
        "verify",
        "attempts",
        "retries",  # the old name of "attempts": read with a deprecation warning
        "retry_min_wait",
        "retry_max_wait",
        "allowed_link_hosts",
        "scheme",
    }
)
_HOSTNAME = re.compile(r"^(?:[a-z0-9_][a-z0-9_-]{0,62}\.)*[a-z0-9_][a-z0-9_-]{0,62}\.?$|^[0-9a-f:.]+$")
DEFAULT_ENDPOINT = "/WebAPI/Report.aspx"


def _verify(value: Any, conn_id: str) -> bool | str:
    """The ``verify`` extra: a bool (or its text: true/false, yes/no, on/off, 1/0) or the path of an existing
    CA bundle file or directory. Anything else is refused here, before a request is sent: requests would take
    ``"ture"`` for a CA path and fail every TLS handshake with an error that does not name the extra."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    if not isinstance(value, str) or not text or not os.path.exists(text):
        raise CloudmaxConfigError(
            f"connection {conn_id!r} extra verify={value!r} is neither true/false nor an existing CA bundle; "
            "set it to true (verify TLS), false (don't) or the path of a CA bundle file or directory on the worker"
        )
    return text  # a CA bundle path


def _number(name: str, value: Any, default: float, *, minimum: float = 0) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:
        raise CloudmaxConfigError(f"connection extra {name}={value!r} must be a number >= {minimum:g}")
    return number


def _attempts(extra: Mapping[str, Any], conn_id: str) -> int:
    """The ``attempts`` extra; its old name ``retries`` is read with a deprecation warning, both are refused."""
    if "retries" not in extra:
        return int(_number("attempts", extra.get("attempts"), RetrySettings.max_attempts, minimum=1))
    if "attempts" in extra:
        raise CloudmaxConfigError(
            f"connection {conn_id!r} gives both extras 'attempts'={extra['attempts']!r} and "
            f"'retries'={extra['retries']!r} ('retries' is the old name of 'attempts'); remove 'retries'"
        )
    from cloudmax_provider.utils.compat import provider_deprecation_warning

    warnings.warn(
        f"connection {conn_id!r}: the extra 'retries' counts attempts and is deprecated; "
        "rename the extra 'retries' to 'attempts'",
        provider_deprecation_warning(),
        stacklevel=4,
    )
    return int(_number("retries", extra["retries"], RetrySettings.max_attempts, minimum=1))


def _with_port(host: str, parts: Any, port: Any, conn_id: str) -> str:
    """The base URL with the connection's Port field (0 or empty: unset) in it; a different port in the
    Base URL is refused (the form shows Port because the UI's Test button needs a stored one)."""
    if port in (None, "", 0, "0"):
        return host
    try:
        number = int(port)
    except (TypeError, ValueError):
        number = -1
    if not 0 < number < 65536:
        raise CloudmaxConfigError(f"connection {conn_id!r} port={port!r} is not a TCP port; use e.g. 443")
    if parts.port is not None and parts.port != number:
        raise CloudmaxConfigError(
            f"connection {conn_id!r}: the Base URL {host!r} says port {parts.port} but the Port field says {number}; "
            "make them equal or clear one"
        )
    if parts.port is None:
        netloc = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        host = parts._replace(netloc=f"{netloc}:{number}").geturl()
    return host


def _extras(conn: Any, conn_id: str) -> Mapping[str, Any]:
    """The connection's extras as a dict; extras that are not a JSON object are refused (Airflow's
    ``extra_dejson`` would log and return ``{}``, silently dropping every setting)."""
    text = getattr(conn, "extra", None)
    if isinstance(text, str) and text.strip():
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CloudmaxConfigError(
                f"connection {conn_id!r}: its extra is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                'write it as a JSON object, e.g. {"timezone": "Asia/Taipei", "timeout": 60}'
            ) from None
        if not isinstance(value, dict):
            raise CloudmaxConfigError(
                f"connection {conn_id!r}: its extra is JSON {type(value).__name__}, not an object; "
                'write it as a JSON object, e.g. {"timezone": "Asia/Taipei"}'
            )
        return value
    return getattr(conn, "extra_dejson", None) or {}


def _check_extra_names(extra: Mapping[str, Any], conn_id: str) -> None:
    for name in extra:
        if name not in EXTRAS:
            near = difflib.get_close_matches(name.lower(), sorted(EXTRAS), n=1)
            fix = f"did you mean {near[0]!r}?" if near else f"the extras are: {', '.join(sorted(EXTRAS))}"
            raise CloudmaxConfigError(f"connection {conn_id!r} has an unknown extra {name!r}; {fix}")


def _port_of(host: str, port_field: Any) -> int | None:
    """The port a scheme-less host names, by the Port field or after its ``:`` (None: none, or not a port)."""
    if port_field:
        return int(port_field) if str(port_field).isdigit() else None
    try:
        return urlsplit(f"//{host}").port
    except ValueError:
        return None


def _base_url(conn: Any, conn_id: str, extra: Mapping[str, Any]) -> str:
    """The connection's host as a base URL. A missing host is an error, never a silent default:
    a misconfigured connection must not reach the production API by accident."""
    raw = (conn.host or "").strip()
    if not raw:
        raise CloudmaxConfigError(
            f"connection {conn_id!r} has no host (Base URL); set it to the API's base URL, e.g. "
            f"{DEFAULT_HOST!r} (Cloudmax's production API) or your test server's 'http://host:port'"
        )
    if "@" in raw:  # never echo it: it may hold a password
        raise CloudmaxConfigError(
            f"connection {conn_id!r}: its host holds user info ('user:password@'); give only scheme://host[:port] "
            "and put the API account and password in login and password"
        )
    host = raw
    bad = f"connection {conn_id!r} host={raw!r} is not a base URL"
    fix = f"use e.g. {DEFAULT_HOST!r} or 'http://127.0.0.1:18080'"
    if "://" not in host:
        # A scheme is not guessed: https against a plain-http test server fails every request with an SSL
        # error that looks transient (retried, then Airflow's retries). The URI form's ?scheme= gives it, and
        # port 443 (the Port field or the host's) can only mean https.
        scheme = extra.get("scheme") or (conn.schema if conn.schema in ("http", "https") else None)
        if scheme is None and _port_of(raw, conn.port) == 443:
            scheme = "https"
        if scheme is None:
            raise CloudmaxConfigError(
                f"{bad}: it has no scheme; write 'https://{raw}' (Cloudmax's API), or 'http://{raw}' for a "
                "plain-HTTP server such as the emulator, or set the 'scheme' extra"
            )
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname or not _HOSTNAME.match(parts.hostname):
        raise CloudmaxConfigError(f"{bad}; {fix}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise CloudmaxConfigError(f"{bad}: its port is not a number from 1 to 65535; {fix}") from None
    if parts.query or parts.fragment or parts.path.lower().endswith(".aspx"):
        raise CloudmaxConfigError(
            f"{bad}: give only scheme://host[:port] (Report.aspx's path goes in the 'endpoint' extra); {fix}"
        )
    return host


@dataclass(frozen=True)
class CloudmaxSettings:
    """Everything the hook needs from a connection; ``credentials`` never appears in ``repr``."""

    base_url: str
    credentials: Credentials = field(repr=False)
    endpoint: str = DEFAULT_ENDPOINT
    method: str = "POST"
    request_format: str = "fields"
    timezone: str = DEFAULT_TIMEZONE
    timeout: float = 60.0
    verify: bool | str = True
    retry: RetrySettings = field(default_factory=RetrySettings)
    allowed_link_hosts: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.endpoint.lstrip("/")

    @property
    def api_host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower()

    @classmethod
    def from_connection(cls, conn: Any) -> CloudmaxSettings:
        """Read an Airflow ``Connection`` (or any object with host/port/login/password/extra_dejson)."""
        conn_id = getattr(conn, "conn_id", "cloudmax_default")
        raw = _extras(conn, conn_id)
        # form fields may be stored prefixed (extra__cloudmax__timezone); plain keys win
        given = {k: v for k, v in raw.items() if v is not None and v != ""}  # an empty form field is unset
        extra = {k.removeprefix("extra__cloudmax__"): v for k, v in given.items() if k.startswith("extra__")}
        extra.update({k: v for k, v in given.items() if not k.startswith("extra__")})
        _check_extra_names(extra, conn_id)
        login, password = (conn.login or "").strip(), conn.password or ""
        if not login or not password:
            raise CloudmaxConfigError(
                f"connection {conn_id!r} needs login (API account, ManagerLoginName) and password "
                "(API password, ManagerPassword)"
            )
        host = _base_url(conn, conn_id, extra)
        host = _with_port(host, urlsplit(host), conn.port, conn_id)
        method = str(extra.get("method", "POST")).upper()
        if method not in ("GET", "POST"):
            raise CloudmaxConfigError(f"connection extra method={method!r}; use 'POST' (default) or 'GET'")
        request_format = str(extra.get("request_format", "fields")).lower()
        if request_format not in ("fields", "xml", "xml_file"):
            raise CloudmaxConfigError(
                f"connection extra request_format={request_format!r}; use 'fields', 'xml' or 'xml_file'"
            )
        if request_format == "xml_file" and method == "GET":
            raise CloudmaxConfigError("connection extra request_format='xml_file' uploads a file: it needs method POST")
        timezone = str(extra.get("timezone") or DEFAULT_TIMEZONE)
        get_timezone(timezone)
        hosts = extra.get("allowed_link_hosts") or ()
        if isinstance(hosts, str):
            hosts = hosts.replace(";", ",").split(",")
        return cls(
            base_url=host.rstrip("/"),
            credentials=Credentials(login, password),
            endpoint=str(extra.get("endpoint") or DEFAULT_ENDPOINT),
            method=method,
            request_format=request_format,
            timezone=timezone,
            timeout=_number("timeout", extra.get("timeout"), 60.0, minimum=0.1),
            verify=_verify(extra.get("verify", True), conn_id),
            retry=RetrySettings(
                max_attempts=_attempts(extra, conn_id),
                min_wait=_number("retry_min_wait", extra.get("retry_min_wait"), RetrySettings.min_wait),
                max_wait=_number("retry_max_wait", extra.get("retry_max_wait"), RetrySettings.max_wait),
            ),
            allowed_link_hosts=tuple(str(h).strip().lower() for h in hosts if str(h).strip()),
        )
