"""What an alert rule may be (a delivery-rate rule on one destination, a volume rule on one source,
thresholds in range, channels it can send on), and saving it; the Slack webhook is stored encrypted."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from overview.configuration.common import (
    INTEGER_MAX,
    ConfigurationError,
    Invalid,
    bounded,
    check_endpoint,
    each_item,
    run_checks,
    saved,
)
from overview.models import AlertRule, Channel

MAX_VOLUME_THRESHOLD = 10_000.0
MAX_WEBHOOK_URL = 500

KEEPS_SUBJECT = "A rule keeps its kind and subject; create a new rule instead."
RATE_NEEDS_DESTINATION = "A delivery_rate rule watches one destination (and no source)."
VOLUME_NEEDS_SOURCE = "A source_volume rule watches one source (and no destination)."
RATE_THRESHOLD = "A delivery rate threshold is a percentage above 0, up to 100."
VOLUME_THRESHOLD = f"A volume threshold is a percentage change above 0, up to {MAX_VOLUME_THRESHOLD:g}."
SLACK_NEEDS_URL = "The Slack channel needs a webhook URL."


def check_channels(channels: list[str]) -> list[str]:
    """In the order the channels are listed everywhere, each once."""
    return [c for c in Channel.values if c in channels]


def check_email(address: str) -> str:
    try:
        validate_email(address)
    except ValidationError as bad:
        raise Invalid(bad.messages[0]) from bad
    return address


def check_slack_webhook_url(url: str) -> str:
    """'' removes the webhook; anything else must be a public URL the outbound client would reach."""
    if len(url) > MAX_WEBHOOK_URL:
        raise Invalid(f"Ensure this field has no more than {MAX_WEBHOOK_URL} characters.")
    return check_endpoint(url) if url else url


def check_fields(data: dict) -> dict:
    """Each field on its own; every failing field's message is collected."""
    return run_checks(
        data,
        {
            "min_volume": bounded(0, INTEGER_MAX),
            "channels": check_channels,
            "email_recipients": each_item(check_email),
            "slack_webhook_url": check_slack_webhook_url,
        },
    )


def check_rules(data: dict, rule: AlertRule | None = None) -> dict:
    """The rules across fields, on the stored values where `data` leaves them out; sets the workspace
    to the subject's."""
    for name in ("kind", "destination", "source"):
        if rule and name in data and data[name] != getattr(rule, name):
            raise ConfigurationError({name: [KEEPS_SUBJECT]})
    kind = data.get("kind", rule.kind if rule else None)
    destination = data.get("destination", rule.destination if rule else None)
    source = data.get("source", rule.source if rule else None)
    if kind == AlertRule.Kind.DELIVERY_RATE and (destination is None or source is not None):
        raise ConfigurationError({"destination": [RATE_NEEDS_DESTINATION]})
    if kind == AlertRule.Kind.SOURCE_VOLUME and (source is None or destination is not None):
        raise ConfigurationError({"source": [VOLUME_NEEDS_SOURCE]})
    threshold = data.get("threshold", rule.threshold if rule else None)
    if kind == AlertRule.Kind.DELIVERY_RATE and not 0 < threshold <= 100:
        raise ConfigurationError({"threshold": [RATE_THRESHOLD]})
    if kind == AlertRule.Kind.SOURCE_VOLUME and not 0 < threshold <= MAX_VOLUME_THRESHOLD:
        raise ConfigurationError({"threshold": [VOLUME_THRESHOLD]})
    has_webhook = data.get("slack_webhook_url", rule.slack_webhook_url if rule else "")
    if Channel.SLACK in data.get("channels", rule.channels if rule else []) and not has_webhook:
        raise ConfigurationError({"slack_webhook_url": [SLACK_NEEDS_URL]})
    return {**data, "workspace": (destination or source).workspace}


def validate(data: dict, rule: AlertRule | None = None) -> dict:
    """`data` (all fields on creation, the changed ones on update) checked, or ConfigurationError."""
    return check_rules(check_fields(data), rule)


def save(checked: dict, rule: AlertRule | None = None) -> AlertRule:
    """Store data that `validate` passed; a webhook left out keeps the stored one, '' removes it."""
    return saved(rule or AlertRule(), checked)


def create_rule(data: dict) -> AlertRule:
    """A new rule from `data`; `created_by` may name who made it."""
    return save(validate(data))


def update_rule(rule: AlertRule, changes: dict) -> AlertRule:
    return save(validate(changes, rule), rule)
