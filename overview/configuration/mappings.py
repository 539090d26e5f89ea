"""What a mapping may be (a trigger routing can read, target fields that are paths), and saving it."""

from delivery.filters import InvalidRule, parse_trigger
from delivery.models import Mapping
from overview.configuration.checks import Invalid, run_checks, storable_json

MAX_FIELD_PATH = 500


def check_trigger(trigger: dict) -> dict:
    storable_json(trigger)
    try:
        parse_trigger(trigger)
    except InvalidRule as error:
        raise Invalid(str(error)) from error
    return trigger


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
    if mapping is None:
        return Mapping.objects.create(**checked)
    for name, value in checked.items():
        setattr(mapping, name, value)
    mapping.save()
    return mapping


def create_mapping(data: dict) -> Mapping:
    return save(validate(data))


def update_mapping(mapping: Mapping, changes: dict) -> Mapping:
    return save(validate(changes), mapping)
