"""What a destination's configuration may be (endpoint, kind settings and credentials, filters, batch
and retry limits, sources of the same workspace), and saving it; credentials are stored encrypted."""

from delivery.destinations import ADAPTERS, InvalidSettings
from delivery.filters import parse_filters
from delivery.models import Destination
from overview.configuration.common import (
    ConfigurationError,
    Invalid,
    bounded,
    check_endpoint,
    each_item,
    keeps_workspace,
    optional,
    readable_by,
    run_checks,
    saved,
    storable_json,
)

MAX_BATCH_SIZE = 1000
MAX_RETRIES = 20
MAX_RATE_LIMIT = 1_000_000  # events a second
MAX_CONSENT_CATEGORY = 100

check_filters = readable_by(parse_filters)


def check_consent_category(name: str) -> str:
    if len(name) > MAX_CONSENT_CATEGORY:
        raise Invalid(f"Ensure this field has no more than {MAX_CONSENT_CATEGORY} characters.")
    return name


def check_rules(data: dict, destination: Destination | None = None) -> dict:
    """The rules across fields, on the stored values where `data` leaves them out."""
    current = destination
    workspace = data.get("workspace") or (current.workspace if current else None)
    foreign = [s.id for s in data.get("sources", []) if workspace and s.workspace_id != workspace.id]
    if foreign:
        ids = ", ".join(str(i) for i in foreign)
        raise ConfigurationError({"sources": [f"Sources {ids} are in another workspace."]})
    # The kind's own check of endpoint, settings and credentials, as delivery will read them.
    kind = data.get("kind", current.kind if current else "")
    endpoint = data.get("endpoint", current.endpoint if current else "")
    settings = data.get("settings", current.settings if current else {})
    credentials = data.get("credentials", current.credentials if current else {})
    adapter = ADAPTERS[kind]
    try:
        adapter.settings_class.parse(endpoint, settings, credentials)
    except InvalidSettings as error:
        field = "credentials" if "credentials" in str(error) else "settings"
        raise ConfigurationError({field: [f"{error}."]}) from error
    batch_size = data.get("batch_size", current.batch_size if current else 100)
    if adapter.max_batch_size and batch_size > adapter.max_batch_size:
        raise ConfigurationError(
            {"batch_size": [f"{adapter.label} takes at most {adapter.max_batch_size} events a request."]}
        )
    return data


def check_fields(data: dict, destination: Destination | None = None) -> dict:
    """Each field on its own; every failing field's message is collected."""
    return run_checks(
        data,
        {
            "workspace": keeps_workspace("destination", destination),
            "endpoint": check_endpoint,
            "settings": storable_json,
            "credentials": storable_json,
            "filters": check_filters,
            "batch_size": bounded(1, MAX_BATCH_SIZE),
            "max_retries": bounded(0, MAX_RETRIES),
            "rate_limit": optional(bounded(1, MAX_RATE_LIMIT)),
            "consent_categories": each_item(check_consent_category),
        },
    )


def validate(data: dict, destination: Destination | None = None) -> dict:
    """`data` (all fields on creation, the changed ones on update) checked, or ConfigurationError."""
    return check_rules(check_fields(data, destination), destination)


def save(checked: dict, destination: Destination | None = None) -> Destination:
    """Store data that `validate` passed; credentials left out keep the stored ones."""
    fields = {name: value for name, value in checked.items() if name != "sources"}
    destination = saved(destination or Destination(), fields)
    if (sources := checked.get("sources")) is not None:
        destination.sources.set(sources)
    return destination


def create_destination(data: dict) -> Destination:
    return save(validate(data))


def update_destination(destination: Destination, changes: dict) -> Destination:
    return save(validate(changes, destination), destination)
