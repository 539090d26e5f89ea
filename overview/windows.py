"""Time windows of the dashboard and the API: which minutes a figure covers, the previous window of
the same length it is compared with, and the bucket size of its chart.

Rollups are per minute, so every window is a whole number of minutes: [start, end), end exclusive.
Pages end the window `DASHBOARD_LOOKBACK_MINUTES` before now (figures are settled by then); the API
passes no lookback and includes the current minute.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)

# The time picker's presets, in the order they are offered.
PRESETS: dict[str, dt.timedelta] = {
    "10m": dt.timedelta(minutes=10),
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "14d": dt.timedelta(days=14),
}
PRESET_LABELS = {
    "10m": "Last 10 minutes",
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "14d": "Last 2 weeks",
}
DEFAULT_RANGE = "24h"
CUSTOM = "custom"
# How far back a custom range may start: the record is kept two weeks.
OLDEST = dt.timedelta(days=14)


class WindowError(ValueError):
    """A range, start or end that does not make a window; the message is shown to the operator."""


@dataclass(frozen=True)
class Window:
    start: dt.datetime  # first minute, inclusive (UTC, minute-aligned)
    end: dt.datetime  # exclusive (UTC, minute-aligned)
    range: str  # a PRESETS key, or "custom"
    lookback: dt.timedelta = dt.timedelta(0)
    # A custom end past the newest settled minute, brought back to it (the page says so); else None.
    asked_end: dt.datetime | None = None

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def label(self) -> str:
        return PRESET_LABELS.get(self.range, "Custom range")

    def previous(self) -> "Window":
        """The window of the same length just before this one, which changes are measured against."""
        return Window(self.start - self.length, self.start, self.range, self.lookback)

    @property
    def bucket(self) -> dt.timedelta:
        return bucket_for(self.length)

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "range": self.range}


def bucket_for(length: dt.timedelta) -> dt.timedelta:
    """Chart bucket size: minutes for short windows, hours from a few hours up (at most 336 buckets)."""
    if length <= 2 * HOUR:
        return MINUTE
    if length <= 6 * HOUR:
        return 5 * MINUTE
    if length <= 12 * HOUR:
        return 15 * MINUTE
    return HOUR


def minute_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def window_end(now: dt.datetime, lookback: dt.timedelta) -> dt.datetime:
    """The end (exclusive) of the newest window: the end of the minute `lookback` before now."""
    return minute_floor(now - lookback) + MINUTE


def preset(name: str, now: dt.datetime, lookback: dt.timedelta = dt.timedelta(0)) -> Window:
    if name not in PRESETS:
        raise WindowError(f"Unknown range {name!r}: use one of {', '.join(PRESETS)}, or start and end.")
    end = window_end(now, lookback)
    return Window(end - PRESETS[name], end, name, lookback)


def custom(
    start: dt.datetime, end: dt.datetime, now: dt.datetime, lookback: dt.timedelta = dt.timedelta(0)
) -> Window:
    """A window from `start` to `end` (aware datetimes), whole minutes, inside the last 14 days.

    An end later than the newest settled minute is brought back to it, so a range "until now"
    still respects the lookback."""
    start, end = minute_floor(start.astimezone(dt.UTC)), minute_floor(end.astimezone(dt.UTC))
    latest = window_end(now, lookback)
    oldest = minute_floor(now.astimezone(dt.UTC)) - OLDEST
    if start < oldest:
        raise WindowError("The start must be inside the last 14 days: older events are no longer kept.")
    asked, end = end, min(end, latest)
    if end <= start:
        raise WindowError("The end must be at least one minute after the start (and not in the future).")
    return Window(start, end, CUSTOM, lookback, asked if asked > end else None)


def parse_moment(text: str, tz: dt.tzinfo, name: str) -> dt.datetime:
    """An ISO 8601 date-time, in UTC; one without an offset is read in the operator's time zone."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as bad:
        raise WindowError(
            f"{name.capitalize()} {text!r} is not an ISO 8601 date and time, e.g. 2025-03-01T14:00."
        ) from bad
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as bad:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise WindowError(
            f"{name.capitalize()} {text!r} is outside the dates a window can have (years 1 to 9999 in UTC)."
        ) from bad


def from_params(
    params: Mapping[str, str],
    now: dt.datetime,
    lookback: dt.timedelta = dt.timedelta(0),
    tz: dt.tzinfo = dt.UTC,
) -> Window:
    """The window a query string asks for: `range`, or `start` and `end`; the default range without either."""
    start, end = params.get("start", "").strip(), params.get("end", "").strip()
    if start or end:
        if params.get("range", "").strip() not in ("", CUSTOM):
            raise WindowError("Give either a range or a start and an end, not both.")
        if not (start and end):
            raise WindowError("A custom range needs both a start and an end.")
        return custom(parse_moment(start, tz, "start"), parse_moment(end, tz, "end"), now, lookback)
    return preset(params.get("range", "").strip() or DEFAULT_RANGE, now, lookback)


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone of that name, or None for a missing or unknown name."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
