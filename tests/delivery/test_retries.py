"""Retry policy as data: what is retried, how long each retry waits, and what operators read about it."""

import datetime as dt
import random
from email.utils import format_datetime

import httpx
import pytest

from delivery import retries
from delivery.catalogue import describe
from delivery.multistatus import error_for_status, reason_for_status
from delivery.results import Error, ErrorType, Success
from delivery.steps import Step

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_timeouts_rate_limits_and_server_errors_are_retried(status):
    assert retries.is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 207, 307, 400, 401, 403, 404, 409, 413, 422])
def test_other_answers_are_final(status):
    assert not retries.is_retryable_status(status)


def test_the_default_schedule_spreads_six_retries_over_about_four_hours():
    assert retries.BACKOFF_MINUTES == (1, 5, 15, 30, 60, 120)
    assert sum(retries.BACKOFF_MINUTES) / 60 == pytest.approx(3.85)


@pytest.mark.parametrize("retry_number", range(1, 9))
def test_each_wait_is_its_step_with_jitter(settings, retry_number):
    settings.DELIVERY_BACKOFF_SCALE = 1.0
    step = retries.BACKOFF_MINUTES[min(retry_number, 6) - 1]
    waits = [retries.backoff(retry_number, rng=random.Random(seed)) for seed in range(200)]

    assert min(waits) >= dt.timedelta(minutes=step * 0.75)
    assert max(waits) <= dt.timedelta(minutes=step * 1.25)
    assert len(set(waits)) > 150  # batches that failed together come back spread out


def test_the_scale_setting_shrinks_the_schedule_for_tests(settings):
    settings.DELIVERY_BACKOFF_SCALE = 0.001

    wait = retries.backoff(1, rng=random.Random(1))

    assert dt.timedelta(milliseconds=45) <= wait <= dt.timedelta(milliseconds=75)


def test_retry_after_is_a_floor_on_the_wait(settings):
    settings.DELIVERY_BACKOFF_SCALE = 0.001

    assert retries.backoff(1, dt.timedelta(seconds=2)) == dt.timedelta(seconds=2)
    settings.DELIVERY_BACKOFF_SCALE = 1.0
    assert retries.backoff(1, dt.timedelta(seconds=2)) >= dt.timedelta(seconds=45)


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("2", dt.timedelta(seconds=2)),
        (" 1.5 ", dt.timedelta(seconds=1.5)),
        ("0", dt.timedelta(0)),
        ("-4", dt.timedelta(0)),
        (format_datetime(NOW + dt.timedelta(seconds=30), usegmt=True), dt.timedelta(seconds=30)),
        (format_datetime(NOW - dt.timedelta(hours=1), usegmt=True), dt.timedelta(0)),
        ("999999999", retries.MAX_RETRY_AFTER),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header, wait):
    assert retries.retry_after(header, NOW) == wait


def test_an_event_has_max_retries_more_attempts_after_the_first():
    assert [retries.retries_left(attempts, 6) for attempts in range(1, 9)] == [True] * 6 + [False] * 2
    assert retries.retries_left(1, 0) is False


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (httpx.ConnectTimeout("t"), "ETIMEDOUT", True),
        (httpx.ReadTimeout("t"), "ETIMEDOUT", True),
        (httpx.PoolTimeout("t"), "ETIMEDOUT", True),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "ECONNRESET", True),
        (httpx.ReadError("reset"), "ECONNRESET", True),
        (httpx.ConnectError("network is unreachable"), "INTERNAL", True),
    ],
)
def test_transport_errors_map_to_catalogue_codes(exc, code, retryable):
    failure = retries.classify_transport(exc)

    assert (failure.code, failure.retryable) == (code, retryable)


def test_the_errno_underneath_decides_between_refused_and_reset():
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    reset = httpx.ReadError("[Errno 104] Connection reset by peer")
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")

    assert retries.classify_transport(refused).code == "EREFUSED"
    assert retries.classify_transport(reset).code == "ECONNRESET"


@pytest.mark.parametrize(
    ("status", "error_type", "reason"),
    [
        (400, "BAD_REQUEST", "400"),
        (401, "INVALID_AUTHENTICATION", "401"),
        (403, "INVALID_AUTHENTICATION", "403"),
        (404, "NOT_FOUND", "404"),
        (408, "RETRYABLE_ERROR", "408"),
        (409, "BAD_REQUEST", "MESSAGE_REJECTED"),
        (413, "BAD_REQUEST", "MESSAGE_REJECTED"),
        (422, "BAD_REQUEST", "MESSAGE_REJECTED"),
        (429, "TOO_MANY_REQUESTS", "429"),
        (500, "RETRYABLE_ERROR", "500"),
        (501, "RETRYABLE_ERROR", "INTERNAL"),
        (502, "RETRYABLE_ERROR", "502"),
        (503, "RETRYABLE_ERROR", "503"),
        (504, "RETRYABLE_ERROR", "504"),
        (307, "UNKNOWN_ERROR", "307"),
    ],
)
def test_an_http_status_gives_the_error_type_and_the_catalogue_reason(status, error_type, reason):
    error = error_for_status(status, "message")

    assert (error.error_type, error.reason_code) == (error_type, reason)
    assert reason_for_status(status) == reason


FAILED_CODES = [
    "307", "400", "401", "403", "404", "MESSAGE_REJECTED", "PAYLOAD_VALIDATION_FAILED", "RETRIES_EXHAUSTED",
    "UNREADABLE_RESPONSE", "PRIVATE_ADDRESS", "ENOTFOUND", "INVALID_SETTINGS", "INTERNAL",
]  # fmt: skip
PENDING_CODES = ["408", "429", "500", "502", "503", "504", "INTERNAL", "ETIMEDOUT", "ECONNRESET", "EREFUSED"]


@pytest.mark.parametrize("code", FAILED_CODES)
def test_every_failure_code_delivery_records_is_in_the_catalogue(code):
    reason = describe(Step.FAILED_DELIVERY, code)

    assert not reason.label.startswith(("Unknown reason", "Status "))
    assert reason.remedy


@pytest.mark.parametrize("code", PENDING_CODES)
def test_every_retried_code_reads_as_retried_while_pending(code):
    reason = describe(Step.PENDING_RETRY, code)

    assert reason.retried
    assert not reason.label.startswith(("Unknown reason", "Status "))


def fixed(attempts, retry_after):
    return NOW + dt.timedelta(minutes=attempts)


def test_a_retryable_error_waits_until_the_budget_is_spent_then_fails_with_the_last_answer():
    error = error_for_status(503, "service unavailable")

    pending = retries.dispose(error, 2, 2, fixed)
    exhausted = retries.dispose(error, 3, 2, fixed)

    assert (pending.step, pending.reason_code, pending.next_attempt_at) == (
        Step.PENDING_RETRY,
        "503",
        NOW + dt.timedelta(minutes=2),
    )
    assert (exhausted.step, exhausted.reason_code, exhausted.status, exhausted.error_type) == (
        Step.FAILED_DELIVERY,
        "RETRIES_EXHAUSTED",
        503,
        "RETRYABLE_ERROR",
    )
    assert (
        exhausted.error_message
        == "Gave up after 3 attempts; the last one failed with: 503 service unavailable"
    )
    assert exhausted.next_attempt_at is None


def test_final_answers_are_recorded_as_they_are():
    rejected = Error(400, ErrorType.PAYLOAD_VALIDATION_FAILED, "email: invalid", "PAYLOAD_VALIDATION_FAILED")

    failed = retries.dispose(rejected, 1, 6, fixed)
    delivered = retries.dispose(Success(207), 4, 6, fixed)

    assert (failed.step, failed.reason_code, failed.error_message) == (
        Step.FAILED_DELIVERY,
        "PAYLOAD_VALIDATION_FAILED",
        "email: invalid",
    )
    assert (delivered.step, delivered.reason_code, delivered.status) == (Step.DELIVERED, "", 207)
