"""What a mapping may be (a trigger routing can read, target fields that are paths), and saving it."""

from delivery.filters import parse_trigger
from delivery.models import Mapping
from overview.configuration.common import Invalid, readable_by, run_checks, saved, storable_json

MAX_FIELD_PATH = 500

check_trigger = readable_by(parse_trigger)


def check_fields(fields: dict) -> dict:
    """Target field -> path in the message; each path a string."""
    for target, path in fields.items():
        if not isinstance(path, str):
            raise Invalid(f"{target}: Not a valid string.")
        if len(path) > MAX_FIELD_PATH:
            raise Invalid(f"{target}: Ensure this field has no more than {MAX_FIELD_PATH} characters.")
    storable_json(fields)
    return fields


def validate(data: dict) -> dict:
    """`data` (all fields on creation, the changed ones on update) checked, or ConfigurationError."""
    return run_checks(data, {"trigger": check_trigger, "fields": check_fields})


def save(checked: dict, mapping: Mapping | None = None) -> Mapping:
    """Store data that `validate` passed: a new mapping (with its `destination`), or the changes."""
    return saved(mapping or Mapping(), checked)


def create_mapping(data: dict) -> Mapping:
    return save(validate(data))


def update_mapping(mapping: Mapping, changes: dict) -> Mapping:
    return save(validate(changes), mapping)
