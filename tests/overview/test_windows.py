"""Time windows: presets, custom ranges inside two weeks, the lookback, the previous window, buckets."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from overview import windows

NOW = dt.datetime(2025, 3, 10, 12, 7, 30, tzinfo=dt.UTC)
LOOKBACK = dt.timedelta(minutes=5)


def utc(*parts) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def test_presets_end_with_the_current_minute_in_the_api():
    window = windows.preset("1h", NOW)
    assert (window.start, window.end, window.range) == (
        utc(2025, 3, 10, 11, 8),
        utc(2025, 3, 10, 12, 8),
        "1h",
    )


def test_pages_end_five_minutes_before_now():
    window = windows.preset("10m", NOW, LOOKBACK)
    # 12:07:30 less 5 minutes is 12:02:30: the window ends with the minute 12:02.
    assert (window.start, window.end) == (utc(2025, 3, 10, 11, 53), utc(2025, 3, 10, 12, 3))
    three_minutes_ago = NOW - dt.timedelta(minutes=3)
    assert three_minutes_ago.replace(second=0) >= window.end


@pytest.mark.parametrize(
    ("name", "length"), [("10m", 10), ("1h", 60), ("24h", 1440), ("7d", 10080), ("14d", 20160)]
)
def test_every_preset_has_its_length_and_a_previous_window_of_the_same_length(name, length):
    window = windows.preset(name, NOW, LOOKBACK)
    previous = window.previous()
    assert window.length == dt.timedelta(minutes=length)
    assert (previous.end, previous.length) == (window.start, window.length)


@pytest.mark.parametrize(("name", "bucket"), [("10m", 1), ("1h", 1), ("24h", 60), ("7d", 60), ("14d", 60)])
def test_bucket_sizes_suit_the_range(name, bucket):
    assert windows.preset(name, NOW).bucket == dt.timedelta(minutes=bucket)


def test_custom_buckets_grow_with_the_length():
    assert windows.bucket_for(dt.timedelta(hours=4)) == dt.timedelta(minutes=5)
    assert windows.bucket_for(dt.timedelta(hours=10)) == dt.timedelta(minutes=15)


def test_custom_range_reads_local_times_in_the_operators_zone():
    params = {"start": "2025-03-09T09:00", "end": "2025-03-09T10:30"}
    window = windows.from_params(params, NOW, LOOKBACK, ZoneInfo("Europe/Paris"))
    assert (window.start, window.end, window.range) == (
        utc(2025, 3, 9, 8, 0),
        utc(2025, 3, 9, 9, 30),
        "custom",
    )
    assert window.previous().start == utc(2025, 3, 9, 6, 30)


def test_custom_range_with_offsets_and_seconds_is_whole_minutes():
    params = {"start": "2025-03-09T09:00:45+02:00", "end": "2025-03-09T08:00:59Z"}
    window = windows.from_params(params, NOW)
    assert (window.start, window.end) == (utc(2025, 3, 9, 7, 0), utc(2025, 3, 9, 8, 0))


def test_a_custom_end_in_the_future_stops_at_the_lookback():
    window = windows.custom(utc(2025, 3, 10, 11, 0), utc(2025, 3, 10, 13, 0), NOW, LOOKBACK)
    assert window.end == utc(2025, 3, 10, 12, 3)


def test_no_parameters_mean_the_last_24_hours():
    assert windows.from_params({}, NOW).range == "24h"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "3d"}, "Unknown range '3d': use one of 10m, 1h, 24h, 7d, 14d, or start and end."),
        ({"start": "2025-03-09T09:00"}, "A custom range needs both a start and an end."),
        ({"range": "1h", "start": "2025-03-09T09:00", "end": "2025-03-09T10:00"},
         "Give either a range or a start and an end, not both."),
        ({"start": "noon", "end": "2025-03-09T10:00"},
         "Start 'noon' is not an ISO 8601 date and time, e.g. 2025-03-01T14:00."),
        ({"start": "2025-03-09T09:00", "end": "later"},
         "End 'later' is not an ISO 8601 date and time, e.g. 2025-03-01T14:00."),
        ({"start": "2025-02-20T09:00", "end": "2025-02-21T10:00"},
         "The start must be inside the last 14 days: older events are no longer kept."),
        ({"start": "2025-03-09T10:00", "end": "2025-03-09T10:00:30"},
         "The end must be at least one minute after the start (and not in the future)."),
        ({"start": "2025-03-10T12:05", "end": "2025-03-10T12:30"},
         "The end must be at least one minute after the start (and not in the future)."),
    ],
)  # fmt: skip
def test_bad_windows_raise_a_clear_message(params, message):
    with pytest.raises(windows.WindowError) as raised:
        windows.from_params(params, NOW, LOOKBACK)
    assert str(raised.value) == message


def test_zone_names_are_checked():
    assert windows.zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert windows.zone("Mars/Olympus") is None
    assert windows.zone("../../etc/passwd") is None
    assert windows.zone("") is None
