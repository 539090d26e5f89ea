"""Reading a message's fields the way every adapter does: an object or nothing, a text or nothing, a
timestamp, and a mapping's targets split into the ones that set an item's identity, name or time and
the ones sent as attributes or properties."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    """A non-blank string, or a number as a string; None for anything else."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def moment(value: Any) -> dt.datetime | None:
    """An ISO-8601 timestamp ("Z" allowed; UTC when it names no zone), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def split_mapped(
    mapped: dict[str, Any] | None, default: Any, reserved: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overrides, values): the mapped `reserved` targets, and the values to send — the other mapped
    targets, or without a mapping (`mapped` None) the message's own object `default`."""
    if mapped is None:
        return {}, dict(as_object(default))
    overrides = {k: v for k, v in mapped.items() if k in reserved}
    return overrides, {k: v for k, v in mapped.items() if k not in reserved}
