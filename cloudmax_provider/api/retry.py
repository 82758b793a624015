"""One retry policy for the sync hook (tenacity ``Retrying``) and the async trigger (``AsyncRetrying``).

Only :func:`is_retryable` decides what is retried: transport code on either side turns its
library's errors (requests, aiohttp, smbprotocol) into :class:`CloudmaxTransientError` first.
Waits grow exponentially, but a ``Retry-After`` the server sent wins (capped at ``max_wait``).

Example::

    >>> from tenacity import Retrying
    >>> for attempt in Retrying(**retry_args(RetrySettings(max_attempts=3))):
    ...     with attempt:
    ...         pass
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from cloudmax_provider.exceptions import (
    CloudmaxAPIError,
    CloudmaxServerException,
    CloudmaxServerExceptionNotRetried,
    CloudmaxTransientError,
)


@dataclass(frozen=True)
class RetrySettings:
    """How often and how patiently to retry: the connection extras ``attempts`` (the first included),
    ``retry_min_wait`` and ``retry_max_wait`` (seconds)."""

    max_attempts: int = 4
    min_wait: float = 1.0
    max_wait: float = 30.0


def is_retryable(exc: BaseException) -> bool:
    """True for transient failures; permanent API errors (wrong password, bad request ...) are never retried."""
    if isinstance(exc, CloudmaxTransientError):
        return True
    return isinstance(exc, CloudmaxAPIError) and not exc.permanent


class ErrorCode100Policy:
    """When an ErrorCode 100 "Exception" is retried (one instance per hook, i.e. per task try).

    The spec documents 100 only as "Exception" and a server may word a refused login any way, so a 100 is
    never simply "transient" (retrying a refused login can lock the account). So:

    * a 100 whose message speaks of the login or password is :class:`CloudmaxAuthError`: never retried;
    * a 100 before the credentials were proven in this task try (by any answer other than 100: a server
      checks the login before the fields) is not retried;
    * after that, a 100 is retried once; a second 100 in a row is not;
    * a 100 not retried is :class:`CloudmaxServerExceptionNotRetried`, an ``AirflowFailException``: no task
      retry asks again.

    With ``halt`` (an event shared by one task's parallel workers), the first 100 sets it and is not retried;
    no worker sends another request (:meth:`halted`).

    Example::

        >>> policy = ErrorCode100Policy()
        >>> type(policy.judge(CloudmaxServerException(100))).__name__
        'CloudmaxServerExceptionNotRetried'
        >>> policy.record_answer(0)
        >>> type(policy.judge(CloudmaxServerException(100))).__name__
        'CloudmaxServerException'
    """

    def __init__(self, halt: threading.Event | None = None) -> None:
        self.credentials_proven = False
        self.consecutive = 0
        self.halt = halt

    def halted(self) -> bool:
        """True once an ErrorCode 100 stopped the workers sharing ``halt`` (never without one)."""
        return self.halt is not None and self.halt.is_set()

    def record_answer(self, error_code: int) -> None:
        """Note an answer of Report.aspx (0 for a report body)."""
        if error_code != 100:
            self.credentials_proven, self.consecutive = True, 0

    def judge(self, exc: CloudmaxAPIError) -> CloudmaxAPIError:
        """``exc`` itself when it may be retried, else its not-retried form."""
        if self.halt is not None and exc.error_code == 100:
            self.halt.set()  # workers in parallel: one 100 stops them all, none is retried
        if not isinstance(exc, CloudmaxServerException) or exc.permanent:
            return exc
        self.consecutive += 1
        if self.credentials_proven and self.consecutive <= 1 and self.halt is None:
            return exc
        return CloudmaxServerExceptionNotRetried(exc.error_code, exc.error_msg, report_part_id=exc.report_part_id)


def retry_args(settings: RetrySettings, before_sleep: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``tenacity.AsyncRetrying`` alike."""
    exponential = wait_exponential(multiplier=settings.min_wait, min=settings.min_wait, max=settings.max_wait)

    def wait(state: RetryCallState) -> float:
        retry_after = getattr(state.outcome.exception() if state.outcome else None, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), settings.max_wait))
        return float(exponential(state))

    return {
        "retry": retry_if_exception(is_retryable),
        "stop": stop_after_attempt(max(1, settings.max_attempts)),
        "wait": wait,
        "reraise": True,
        "before_sleep": before_sleep,
    }
