"""The ``cloudmax`` connection, read into plain settings (pure; shared by hook, operator and trigger).

Connection fields: host = base URL (``https://api.itpison.com`` by default; ``http://127.0.0.1:8080``
works, as does a bare host with port and ``scheme`` extra), port = the base URL's port (optional; when
both give one they must agree; the UI's Test button needs it stored), login = ManagerLoginName,
password = ManagerPassword. Extras:

==================  ==========================  ===============================================
extra               default                     meaning
==================  ==========================  ===============================================
endpoint            ``/WebAPI/Report.aspx``     path of Report.aspx
method              ``POST``                    ``GET`` for servers whose Web.config demands it
request_format      ``fields``                  ``xml`` (XmlRequest) or ``xml_file`` (XmlReqFilePath)
timezone            ``Asia/Taipei``             the account's clock (IANA name)
timeout             ``60``                      seconds per HTTP request (connect and read)
verify              ``true``                    TLS verification: bool or a CA bundle path
retries             ``4``                       attempts for transient failures
retry_min_wait      ``1``                       first back-off, seconds
retry_max_wait      ``30``                      longest back-off, seconds
allowed_link_hosts  ``[]``                      other hosts whose DOWNLOADLINKs may be fetched
scheme              ``https``                   for a host given without ``http(s)://``
==================  ==========================  ===============================================

Example (environment)::

    AIRFLOW_CONN_CLOUDMAX_DEFAULT='{"conn_type": "cloudmax", "host": "http://127.0.0.1:8080",
        "login": "demo", "password": "demo-password", "extra": {"timezone": "Asia/Taipei"}}'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cloudmax_provider.errors import CloudmaxConfigError
from cloudmax_provider.request import Credentials, get_timezone
from cloudmax_provider.retry import RetrySettings

DEFAULT_HOST = "https://api.itpison.com"
DEFAULT_ENDPOINT = "/WebAPI/Report.aspx"
DEFAULT_TIMEZONE = "Asia/Taipei"


def _bool(name: str, value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
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


def _with_port(host: str, parts: Any, port: Any, conn_id: str) -> str:
    """The base URL with the connection's Port field in it.

    The Port field and a port in the Base URL may both be given (the UI's Test button only works for a
    connection with a stored port, so the form shows Port): equal is fine, different is refused.
    Port 0 or empty is unset.
    """
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
        raw: Mapping[str, Any] = getattr(conn, "extra_dejson", None) or {}
        # form fields may be stored prefixed (extra__cloudmax__timezone); plain keys win
        given = {k: v for k, v in raw.items() if v is not None and v != ""}  # an empty form field is unset
        extra = {k.removeprefix("extra__cloudmax__"): v for k, v in given.items() if k.startswith("extra__")}
        extra.update({k: v for k, v in given.items() if not k.startswith("extra__")})
        login, password = (conn.login or "").strip(), conn.password or ""
        conn_id = getattr(conn, "conn_id", "cloudmax_default")
        if not login or not password:
            raise CloudmaxConfigError(
                f"connection {conn_id!r} needs login (API account, ManagerLoginName) and password "
                "(API password, ManagerPassword)"
            )
        host = (conn.host or DEFAULT_HOST).strip()
        if "://" not in host:
            scheme = str(extra.get("scheme") or (conn.schema if conn.schema in ("http", "https") else "https"))
            host = f"{scheme}://{host}"
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CloudmaxConfigError(
                f"connection {conn_id!r} host={conn.host!r} is not a base URL; use e.g. 'https://api.itpison.com'"
            )
        host = _with_port(host, parts, conn.port, conn_id)
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
            hosts = [h for h in hosts.replace(";", ",").split(",")]
        return cls(
            base_url=host.rstrip("/"),
            credentials=Credentials(login, password),
            endpoint=str(extra.get("endpoint") or DEFAULT_ENDPOINT),
            method=method,
            request_format=request_format,
            timezone=timezone,
            timeout=_number("timeout", extra.get("timeout"), 60.0, minimum=0.1),
            verify=_bool("verify", extra.get("verify", True)),
            retry=RetrySettings(
                max_attempts=int(_number("retries", extra.get("retries"), RetrySettings.max_attempts, minimum=1)),
                min_wait=_number("retry_min_wait", extra.get("retry_min_wait"), RetrySettings.min_wait),
                max_wait=_number("retry_max_wait", extra.get("retry_max_wait"), RetrySettings.max_wait),
            ),
            allowed_link_hosts=tuple(str(h).strip().lower() for h in hosts if str(h).strip()),
        )
