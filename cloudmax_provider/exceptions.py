"""Errors, and the map from Report.aspx ErrorCodes to them: one place for sync and async code.

Permanent errors also derive from :class:`AirflowFailException`, so a task that hits one fails
at once instead of burning its retries (retrying a wrong password can lock the account).
Transient ones (:class:`CloudmaxTransientError`) are retried inside the hook by
:mod:`cloudmax_provider.api.retry`; an ErrorCode 100 "Exception" only under the narrow rule of
:class:`cloudmax_provider.api.retry.ErrorCode100Policy` (a 100 may be a refused login).

No message built here ever holds a password: the API echoes none, and URLs are redacted
before they get here (:func:`cloudmax_provider.api.request.redact_url`).

Example::

    >>> err = error_for_code(103, "Incorrect ReportPartID", report_part_id=99)
    >>> type(err).__name__, err.permanent
    ('CloudmaxIncorrectReportPartError', True)
"""

from __future__ import annotations

import re
from typing import ClassVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class CloudmaxError(AirflowException):
    """Base of every error this provider raises."""

    permanent: ClassVar[bool] = False


class CloudmaxConfigError(CloudmaxError, AirflowFailException, ValueError):
    """A bad argument or connection setting, found before anything was sent. Names the field and the fix."""

    permanent = True


class CloudmaxWindowError(CloudmaxConfigError):
    """start_time/end_time give an empty or reversed window."""


class CloudmaxTransientError(CloudmaxError):
    """A failure worth retrying: HTTP 5xx/429, timeouts, connection resets, a body cut short."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class CloudmaxResponseError(CloudmaxError, AirflowFailException):
    """An answer that is not the API's (an HTML page, a 404 from a wrong endpoint, unreadable XML)."""

    permanent = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudmaxSchemaChangeError(CloudmaxResponseError):
    """A report header that differs from the expected columns, with ``schema_change="fail"``: nothing landed."""


class CloudmaxLinkError(CloudmaxError, AirflowFailException):
    """A DOWNLOADLINK that cannot be used: refused host, 403/410, an error page instead of the file."""

    permanent = True


class CloudmaxUncPathError(CloudmaxLinkError, ValueError):
    """A UNC DOWNLOADLINK that is not a well-formed ``\\\\server\\share\\file`` (it is also a ``ValueError``)."""


class CloudmaxSmbError(CloudmaxError, OSError):
    """Reading a UNC DOWNLOADLINK over SMB failed; the message names host:port and the fix, never the password.

    Each kind is also the matching built-in ``OSError`` subclass, so ``except ConnectionError`` still
    catches an unreachable server.
    """


class CloudmaxSmbAuthError(CloudmaxSmbError, PermissionError):
    """The SMB server refused the credentials (or none were given)."""


class CloudmaxSmbAccessDeniedError(CloudmaxSmbError, PermissionError):
    """The login was accepted, but not for this share or file."""


class CloudmaxSmbUnreachableError(CloudmaxSmbError, ConnectionError):
    """The SMB server could not be reached at host:port, or the connection broke."""


class CloudmaxSmbTimeoutError(CloudmaxSmbError, TimeoutError):
    """An SMB request timed out."""


class CloudmaxSmbNotFoundError(CloudmaxSmbError, FileNotFoundError):
    """The share, or the file or a directory on its path, does not exist."""


class CloudmaxSmbIsADirectoryError(CloudmaxSmbError, IsADirectoryError):
    """The link names a directory, not a file."""


class CloudmaxAPIError(CloudmaxError):
    """Report.aspx answered ErrorCode > 0.

    ``error_code`` and ``error_msg`` are the API's ERRORCODE and ERRORMSG; ``report_part_id`` the
    report asked for (None when unknown).
    """

    default_msg: ClassVar[str] = ""
    hint: ClassVar[str] = ""

    def __init__(self, error_code: int, error_msg: str = "", *, report_part_id: int | None = None) -> None:
        self.error_code = error_code
        self.error_msg = error_msg or self.default_msg
        self.report_part_id = report_part_id
        report = f" for ReportPartID {report_part_id}" if report_part_id is not None else ""
        hint = f" {self.hint}" if self.hint else ""
        super().__init__(f"Cloudmax ErrorCode {error_code}{report}: {self.error_msg or '(no message)'}.{hint}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.error_code, self.error_msg), {"report_part_id": self.report_part_id})


class CloudmaxServerException(CloudmaxAPIError):
    """ErrorCode 100 "Exception": a server-side failure, or a login the server refused in other words.

    Retried at most once, and only after the credentials were proven by an earlier answer in the
    same task try (:class:`cloudmax_provider.api.retry.ErrorCode100Policy`).
    """

    default_msg = "Exception"


class CloudmaxServerExceptionNotRetried(CloudmaxServerException, AirflowFailException):
    """An ErrorCode 100 the provider will not retry (and Airflow will not retry the task for):
    the spec documents 100 only as "Exception", so it may be a refused login, and retrying a
    refused login can lock the account."""

    permanent = True
    hint = (
        "Not retried: the spec gives ErrorCode 100 for any server exception, a refused login included, and "
        "retrying a refused login can lock the account. Check the connection's login and password; if they "
        "are right, clear the task to run it again."
    )


class CloudmaxHaltedError(CloudmaxError, AirflowFailException):
    """A request not sent: another worker of the same task (``max_concurrent_requests`` > 1) got an
    ErrorCode 100, and after one no worker asks again (the task fails with that 100)."""


class CloudmaxAuthError(CloudmaxAPIError, AirflowFailException):
    """ErrorCode 100 about the credentials. Never retried: retries can lock the account."""

    permanent = True
    hint = "Check the connection's login (ManagerLoginName) and password (ManagerPassword)."


class CloudmaxIncorrectRequestError(CloudmaxAPIError, AirflowFailException):
    """ErrorCode 102 "Incorrect Request": a field is missing or malformed."""

    permanent = True
    default_msg = "Incorrect Request"
    hint = "Check launch_ids, columns and response_mode."


class CloudmaxIncorrectReportPartError(CloudmaxAPIError, AirflowFailException):
    """ErrorCode 103 "Incorrect ReportPartID"."""

    permanent = True
    default_msg = "Incorrect ReportPartID"
    hint = "Use a ReportPartID of cloudmax_provider.api.catalog.REPORT_PARTS."


class CloudmaxTimeFormatError(CloudmaxAPIError, AirflowFailException):
    """ErrorCode 110 "Invalid time format"."""

    permanent = True
    default_msg = "Invalid time format"
    hint = "StartTime/EndTime must be 'yyyy-MM-dd HH:mm:ss'."


class CloudmaxNoLicenceError(CloudmaxAPIError, AirflowFailException):
    """ErrorCode 1000 "No Licence at Page": the account is not licensed for this report."""

    permanent = True
    default_msg = "No Licence at Page"
    hint = "Ask Cloudmax to license this report for the API account."


class CloudmaxUnknownAPIError(CloudmaxAPIError, AirflowFailException):
    """An ErrorCode the spec does not list: not retried, since nothing says it would help."""

    permanent = True


#: The spec's ErrorCode table (100 is split further by :func:`error_for_code`).
ERROR_CODES: dict[int, type[CloudmaxAPIError]] = {
    100: CloudmaxServerException,
    102: CloudmaxIncorrectRequestError,
    103: CloudmaxIncorrectReportPartError,
    110: CloudmaxTimeFormatError,
    1000: CloudmaxNoLicenceError,
}

# Reading taken: the spec gives 100 only as "Exception"; a 100 whose message speaks of login,
# password, account or credentials (English or Chinese) is a credentials failure.
_CREDENTIALS_MSG = re.compile(r"login|password|passwd|credential|account|auth|帳號|密碼|登入", re.IGNORECASE)


def error_for_code(error_code: int, error_msg: str = "", *, report_part_id: int | None = None) -> CloudmaxAPIError:
    """The exception for an ERRORCODE/ERRORMSG pair (ErrorCode must be > 0)."""
    cls: type[CloudmaxAPIError] = ERROR_CODES.get(error_code, CloudmaxUnknownAPIError)
    if error_code == 100 and _CREDENTIALS_MSG.search(error_msg or ""):
        cls = CloudmaxAuthError
    return cls(error_code, error_msg, report_part_id=report_part_id)
