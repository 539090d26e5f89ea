"""What a source's configuration may be (its schema controls and tracking plan), and saving it."""

from urllib.parse import urlsplit

from delivery.models import Source
from overview.configuration.common import (
    Invalid,
    check_json_schema,
    keeps_workspace,
    run_checks,
    saved,
    storable_json,
)


def check_blocked_event_types(types: list[str]) -> list[str]:
    return sorted(set(types))


def check_tracking_plan(plan: dict) -> dict:
    storable_json(plan)
    for name, schema in plan.items():
        check_json_schema(schema, f"The schema of {name!r}")
    return plan


def check_common_schema(schema: dict) -> dict:
    storable_json(schema)
    if schema:
        check_json_schema(schema, "The common schema")
    return schema


MAX_ORIGINS = 100


def check_allowed_origins(origins: list[str]) -> list[str]:
    """Web origins as a browser's Origin header has them: scheme and host, a port only when not the
    scheme's usual one, no path ("https://shop.example", "http://localhost:3000")."""
    if len(origins) > MAX_ORIGINS:
        raise Invalid(f"At most {MAX_ORIGINS} origins.")
    cleaned = []
    for origin in origins:
        origin = origin.strip().rstrip("/")
        parts = urlsplit(origin)
        try:
            port = parts.port
        except ValueError:
            port = None
            parts = parts._replace(netloc="")  # an unreadable port: refused below
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise Invalid(
                f"{origin!r} is not a web origin: give the scheme and host (and a port if not the usual one),"
                " as in https://shop.example or http://localhost:3000, without a path."
            )
        usual = {"http": 80, "https": 443}[parts.scheme]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = f":{port}" if port and port != usual else ""  # a browser leaves the usual port out
        cleaned.append(f"{parts.scheme}://{host}{port}")
    return sorted(set(cleaned))


def validate(data: dict, source: Source | None = None) -> dict:
    """`data` (all fields on creation, the changed ones on update) checked and cleaned, or
    ConfigurationError with every field's messages."""
    return run_checks(
        data,
        {
            "workspace": keeps_workspace("source", source),
            "blocked_event_types": check_blocked_event_types,
            "tracking_plan": check_tracking_plan,
            "common_schema": check_common_schema,
            "allowed_origins": check_allowed_origins,
        },
    )


def save(checked: dict, source: Source | None = None) -> Source:
    """Store data that `validate` passed: a new source, or the changes to `source`."""
    return saved(source or Source(), checked)


def create_source(data: dict) -> Source:
    return save(validate(data))


def update_source(source: Source, changes: dict) -> Source:
    return save(validate(changes, source), source)
