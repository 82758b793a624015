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

from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from cloudmax_provider.errors import CloudmaxAPIError, CloudmaxTransientError


@dataclass(frozen=True)
class RetrySettings:
    """How often and how patiently to retry; from the connection extras ``retries``,
    ``retry_min_wait`` and ``retry_max_wait`` (seconds)."""

    max_attempts: int = 4
    min_wait: float = 1.0
    max_wait: float = 30.0


def is_retryable(exc: BaseException) -> bool:
    """True for transient failures; permanent API errors (wrong password, bad request ...) are never retried."""
    if isinstance(exc, CloudmaxTransientError):
        return True
    return isinstance(exc, CloudmaxAPIError) and not exc.permanent


class _WaitRetryAfterOrExponential:
    def __init__(self, settings: RetrySettings) -> None:
        self._max = settings.max_wait
        self._exp = wait_exponential(multiplier=settings.min_wait, min=settings.min_wait, max=settings.max_wait)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self._max))
        return float(self._exp(state))


def retry_args(settings: RetrySettings, before_sleep: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``tenacity.AsyncRetrying`` alike."""
    args: dict[str, Any] = {
        "retry": retry_if_exception(is_retryable),
        "stop": stop_after_attempt(max(1, settings.max_attempts)),
        "wait": _WaitRetryAfterOrExponential(settings),
        "reraise": True,
    }
    if before_sleep is not None:
        args["before_sleep"] = before_sleep
    return args
