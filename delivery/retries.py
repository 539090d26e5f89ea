"""Which delivery failures are worth another attempt, and when: retryable statuses and transport errors
as data, exponential backoff with jitter that honours Retry-After, the retry budget, and the decision
for each attempted event — delivered, pending retry until a time, or failed."""

from __future__ import annotations

import datetime as dt
import email.utils
import errno
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings

from delivery.http import DeadlineExceeded, DestinationAddressError
from delivery.reasons import Reason
from delivery.results import Error, Result, Success
from delivery.steps import Step

# 408 Request Timeout, 429 Too Many Requests and every 5xx: the destination may accept the same
# request later. Everything else is the destination's final word on those events.
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})

# Minutes before retry 1, 2, ...: 6 retries over about 3.9 hours (231 minutes before jitter). A
# destination allowed more retries keeps waiting the last step.
BACKOFF_MINUTES = (1, 5, 15, 30, 60, 120)
# Each wait is scaled by a random factor in [1 - JITTER, 1 + JITTER] so that batches that failed
# together do not all come back at the same second.
JITTER = 0.25
# A Retry-After longer than this is treated as this (a misconfigured header must not park events).
MAX_RETRY_AFTER = dt.timedelta(hours=6)


@dataclass(frozen=True)
class TransportFailure:
    """A request that got no HTTP answer: the catalogue code, whether to retry, and what happened."""

    code: Reason
    retryable: bool
    message: str


# (exception, code, retryable), most specific first. Connection refused is told apart from other
# connect errors by the OS error underneath (see `classify_transport`).
TRANSPORT_ERRORS: tuple[tuple[type[Exception], Reason, bool], ...] = (
    (httpx.TimeoutException, Reason.ETIMEDOUT, True),
    (httpx.ConnectError, Reason.INTERNAL, True),
    (httpx.ReadError, Reason.ECONNRESET, True),
    (httpx.WriteError, Reason.ECONNRESET, True),
    (httpx.RemoteProtocolError, Reason.ECONNRESET, True),
    (httpx.TransportError, Reason.INTERNAL, True),
)
REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED})
RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def classify_transport(exc: Exception) -> TransportFailure:
    """The failure an exception from `delivery.http.post` stands for."""
    if isinstance(exc, DestinationAddressError):
        # Not retried: a host that does not resolve or resolves to a refused address is a settings
        # problem (the catalogue tells the operator to check the URL).
        return TransportFailure(exc.reason_code, False, str(exc))
    message = _describe(exc)
    os_errno = _os_errno(exc)
    if os_errno in REFUSED_ERRNOS:
        return TransportFailure(Reason.EREFUSED, True, f"connection refused: {message}")
    if os_errno in RESET_ERRNOS:
        return TransportFailure(Reason.ECONNRESET, True, f"connection reset: {message}")
    for kind, code, retryable in TRANSPORT_ERRORS:
        if isinstance(exc, kind):
            return TransportFailure(code, retryable, message)
    raise TypeError(f"not a delivery transport error: {exc!r}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, DeadlineExceeded):
        return str(exc)  # "no complete answer within N s"
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return f"timed out {kind}"
    return str(exc) or type(exc).__name__


def _os_errno(exc: BaseException) -> int | None:
    """The errno of the first OSError in the exception's cause chain (httpx wraps httpcore wraps OS)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """Retry-After as a wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past: no wait asked for
        return dt.timedelta(0)
    return min(dt.timedelta(seconds=seconds), MAX_RETRY_AFTER)


def backoff(retry_number: int, wait_at_least: dt.timedelta | None = None, rng: random.Random | None = None):
    """The wait before retry number `retry_number` (1-based): the schedule step with jitter, scaled by
    DELIVERY_BACKOFF_SCALE, and never shorter than the destination's Retry-After."""
    step = BACKOFF_MINUTES[min(retry_number, len(BACKOFF_MINUTES)) - 1]
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    wait = dt.timedelta(minutes=step * factor * backoff_scale())
    return max(wait, wait_at_least) if wait_at_least is not None else wait


def backoff_scale() -> float:
    # Tests shrink the schedule (e.g. 0.001 turns 1 minute into 60 ms); production leaves it at 1.
    return settings.DELIVERY_BACKOFF_SCALE


def retries_left(attempts: int, max_retries: int) -> bool:
    """Whether an event that has now been attempted `attempts` times may be tried again."""
    return attempts <= max_retries


def exhausted_message(attempts: int, last_message: str) -> str:
    return f"Gave up after {attempts} attempts; the last one failed with: {last_message}"


# --- what an attempt's result means for its outcome ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Disposition:
    """Where an outcome goes after an attempt: its step and reason, what to show, and when to try again."""

    step: Step
    reason_code: Reason | str
    status: int | None
    error_type: str
    error_message: str
    next_attempt_at: dt.datetime | None


def dispose_batch(
    attempts: Sequence[int], results: Sequence[Result], max_retries: int, now: dt.datetime
) -> list[Disposition]:
    """Each attempted event's disposition, given how many attempts it has had. Events retried after the
    same number of attempts and the same answer get one shared wait, so a batch that failed as a whole
    comes back as a whole."""
    waits: dict[tuple[int, dt.timedelta | None], dt.datetime] = {}

    def retry_at(attempts: int, retry_after: dt.timedelta | None) -> dt.datetime:
        if (attempts, retry_after) not in waits:
            waits[attempts, retry_after] = now + backoff(attempts, retry_after)
        return waits[attempts, retry_after]

    return [dispose(r, n, max_retries, retry_at) for n, r in zip(attempts, results, strict=True)]


def dispose(
    result: Result,
    attempts: int,
    max_retries: int,
    retry_at: Callable[[int, dt.timedelta | None], dt.datetime],
) -> Disposition:
    """What this attempt's result means for the outcome, given how many attempts it has had."""
    if isinstance(result, Success):
        return Disposition(Step.DELIVERED, "", result.status, "", "", None)
    if not result.retryable:
        return Disposition(
            Step.FAILED_DELIVERY,
            result.reason_code,
            result.status,
            str(result.error_type),
            result.error_message,
            None,
        )
    if not retries_left(attempts, max_retries):
        return Disposition(
            Step.FAILED_DELIVERY,
            Reason.RETRIES_EXHAUSTED,
            result.status,
            str(result.error_type),
            exhausted_message(attempts, _with_reason(result)),
            None,
        )
    return Disposition(
        Step.PENDING_RETRY,
        result.reason_code,
        result.status,
        str(result.error_type),
        result.error_message,
        retry_at(attempts, result.retry_after),
    )


def _with_reason(error: Error) -> str:
    prefix = str(error.status) if error.status is not None else error.reason_code
    return f"{prefix} {error.error_message}"
