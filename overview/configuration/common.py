"""What every configuration service shares: the errors it raises, the checks (values PostgreSQL can
store, JSON Schemas, public URLs, bounded numbers, lists item by item) and saving checked changes."""

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import Any, TypeVar

from django.db.models import Model

from delivery import http, schema_controls
from delivery.filters import InvalidRule

M = TypeVar("M", bound=Model)


class Invalid(ValueError):
    """One field's value breaks a rule; the message is shown as it is."""


class ConfigurationError(ValueError):
    """A configuration that cannot be saved, with the messages for each field (the API's field names)."""

    def __init__(self, field_errors: dict[str, list[str]]) -> None:
        super().__init__(field_errors)
        self.field_errors = field_errors


def run_checks(data: dict, checks: dict[str, Callable[[object], object]]) -> dict:
    """`data` with each present field through its check; every failing field's message is collected."""
    cleaned, errors = dict(data), {}
    for name, check in checks.items():
        if name not in data:
            continue
        try:
            cleaned[name] = check(data[name])
        except Invalid as bad:
            errors[name] = [str(bad)]
    if errors:
        raise ConfigurationError(errors)
    return cleaned


def storable_json(value: object, path: str = "") -> object:
    """PostgreSQL's jsonb cannot hold NUL characters or lone surrogates: refuse them as input errors."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid(f"{path or 'A string'} contains a NUL character.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as bad:
            raise Invalid(f"{path or 'A string'} is not valid Unicode.") from bad
    elif isinstance(value, MappingABC):
        for key, item in value.items():
            storable_json(key, path)
            storable_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable_json(item, f"{path}[{index}]")
    return value


def check_json_schema(schema: object, what: str) -> None:
    """Refuse a schema routing would not use (delivery.schema_controls' rule: valid, of a known dialect,
    referring to nothing outside itself), saying why."""
    try:
        schema_controls.check_schema(schema, what)
    except schema_controls.InvalidSchema as error:
        raise Invalid(str(error)) from error


def readable_by(parse: Callable[[object], object]) -> Callable[[object], object]:
    """A check that routing can read a stored JSON rule (filters, a trigger) with `parse`."""

    def check(rule: object) -> object:
        storable_json(rule)
        try:
            parse(rule)
        except InvalidRule as error:
            raise Invalid(str(error)) from error
        return rule

    return check


def check_endpoint(url: str) -> str:
    """Refuse URLs the pipeline's outbound client would refuse (delivery.http's rule). A host that does
    not resolve now is accepted: delivery records ENOTFOUND if it still does not when events go out."""
    try:
        http.check_public_url(url)
    except http.HostNotFoundError:
        return url
    except http.PrivateAddressError as refused:
        raise Invalid(f"{refused}; this deployment does not deliver to those.") from refused
    except http.DestinationAddressError as refused:
        raise Invalid(f"{refused}.") from refused
    return url


# The largest value of PostgreSQL's integer, the column of Django's (Positive)IntegerField.
INTEGER_MAX = 2**31 - 1


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The check, except that None (no value) passes as it is."""
    return lambda value: None if value is None else check(value)


def bounded(low: int, high: int | None = None) -> Callable[[int], int]:
    """A check that a whole number lies in [low, high] (the wording of Django's and DRF's own)."""

    def check(value: int) -> int:
        if value < low:
            raise Invalid(f"Ensure this value is greater than or equal to {low}.")
        if high is not None and value > high:
            raise Invalid(f"Ensure this value is less than or equal to {high}.")
        return value

    return check


def each_item(check: Callable[[object], object]) -> Callable[[list], list]:
    """A check of every item of a list, its messages numbered from 1 as the pages show them."""

    def check_all(values: list) -> list:
        for index, value in enumerate(values):
            try:
                check(value)
            except Invalid as bad:
                raise Invalid(f"item {index + 1}: {bad}") from bad
        return values

    return check_all


def keeps_workspace(what: str, current) -> Callable[[object], object]:
    """A check that a saved object's workspace is not changed (`current` is None on creation)."""

    def check(workspace):
        if current is not None and workspace.id != current.workspace_id:
            raise Invalid(f"A {what} cannot move to another workspace.")
        return workspace

    return check


def saved(instance: M, changes: dict) -> M:
    """`instance` (new, or stored) with checked `changes` set and saved. Write-only secrets are
    properties of the models that encrypt on assignment, so they are set like any field."""
    for name, value in changes.items():
        setattr(instance, name, value)
    instance.save()
    return instance
