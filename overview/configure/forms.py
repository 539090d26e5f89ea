"""HTML forms of the configuration pages. They only turn what a browser posts into the shape the
configuration services take (`changes`, the API's field names); the services check and save it, so a
page and the API can never disagree. Credentials and webhook URLs are write-only: the forms never show
them back, and blank keeps them."""

from django import forms

from delivery.destinations import ADAPTERS
from delivery.destinations.kinds import KIND_CHOICES
from delivery.filters import InvalidRule, parse_conditions
from delivery.models import Source
from delivery.steps import EVENT_TYPES
from overview.models import Channel

TYPE_CHOICES = [(t, t) for t in EVENT_TYPES]
JSON_WIDGET = {"class": "code-input", "rows": 6, "spellcheck": "false"}


def trigger_text(trigger: dict) -> str:
    """A mapping's trigger in words, for lists: "track · Order Completed · properties.total exists"."""
    if not trigger:
        return "Every event"
    as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
    parts = [", ".join(as_list(trigger.get("type"))), ", ".join(as_list(trigger.get("event")))]
    try:
        parts += [str(c) for c in parse_conditions(trigger.get("conditions"))]
    except InvalidRule:
        parts.append("(conditions that cannot be read)")
    return " · ".join(part for part in parts if part) or "Every event"


def _names(text: str) -> list[str]:
    """Comma- or line-separated names, trimmed, blanks dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class JSONObjectField(forms.JSONField):
    """A JSON text area that must hold an object (or a list, with `list_ok`); blank is `empty`."""

    def __init__(self, *, empty=None, list_ok: bool = False, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs=JSON_WIDGET))
        super().__init__(**kwargs)
        self.empty, self.list_ok = empty, list_ok

    def prepare_value(self, value):
        if value in (None, "", {}, []) and not isinstance(value, forms.fields.InvalidJSONInput):
            return ""
        return super().prepare_value(value)

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return self.empty
        wanted = (dict, list) if self.list_ok else (dict,)
        if not isinstance(value, wanted):
            raise forms.ValidationError(
                'Enter a JSON object, like {"key": "value"}.'
                if not self.list_ok
                else 'Enter a JSON list of rules, like [{"action": "drop", ...}].'
            )
        return value


class ConfigForm(forms.Form):
    """A form whose cleaned data becomes a configuration service's input (`changes`)."""

    # Service (and API) field name -> this form's field, where they differ (errors are shown next to
    # the right input).
    field_names: dict[str, str] = {}

    def changes(self) -> dict:
        return dict(self.cleaned_data)


class SourceForm(ConfigForm):
    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True, help_text="A disabled source refuses events.")
    blocked_event_types = forms.MultipleChoiceField(
        choices=TYPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Drop these message types",
        help_text="Filtered at source with reason event_setting.",
    )
    block_unplanned_events = forms.BooleanField(
        required=False, help_text="Drop track events whose name is not in the tracking plan."
    )
    block_schema_violations = forms.BooleanField(
        required=False, help_text="Drop events that break their schema in the tracking plan."
    )
    tracking_plan = JSONObjectField(
        empty={},
        help_text="Event name → JSON Schema of the whole message, e.g. "
        '{"Order Completed": {"type": "object"}}.',
    )
    common_schema = JSONObjectField(empty={}, help_text="A JSON Schema every message must meet.")
    allowed_origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Web pages that may send with this write key, one origin per line or comma-separated, "
        "e.g. https://shop.example. Blank: any origin. Server-side clients are not affected.",
    )

    @classmethod
    def initial_for(cls, source: Source) -> dict:
        initial = {name: getattr(source, name) for name in cls.base_fields}
        initial["allowed_origins"] = "\n".join(source.allowed_origins)
        return initial

    def changes(self) -> dict:
        return {**self.cleaned_data, "allowed_origins": _names(self.cleaned_data["allowed_origins"])}


class WriteOnlyTextarea(forms.Textarea):
    """A text area that never renders a value: not the stored secret, and not the one just typed when the
    form comes back with an error (the page, its cache or a screenshot would show it)."""

    def format_value(self, value) -> None:
        return None


CREDENTIALS_RETYPE = "Credentials are never shown back: enter them again before you save."

CREDENTIALS_HELP = "Write-only: never shown again. Leave blank to keep the current credentials. " + " ".join(
    f"{label}: {ADAPTERS[kind].credentials_example}." for kind, label in KIND_CHOICES
)


class DestinationForm(ConfigForm):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=KIND_CHOICES)
    endpoint = forms.URLField(max_length=500, assume_scheme="https", help_text="Where batches are posted.")
    sources = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="Events from these sources come here."
    )
    enabled = forms.BooleanField(required=False, initial=True)
    batch_size = forms.IntegerField(initial=100, help_text="Events per request, 1 to 1000.")
    max_retries = forms.IntegerField(initial=6, help_text="Retries of a retryable failure before it fails.")
    rate_limit = forms.IntegerField(
        required=False, help_text="At most this many events a second, over all mappings. Blank: no limit."
    )
    credentials = JSONObjectField(
        help_text=CREDENTIALS_HELP, widget=WriteOnlyTextarea(attrs={**JSON_WIDGET, "rows": 3})
    )
    settings = JSONObjectField(empty={}, help_text='Settings that are not secret, e.g. {"region": "EU"}.')
    filters = JSONObjectField(
        empty=[],
        list_ok=True,
        help_text='Destination filters, in order: [{"action": "drop", "if": {"type": "page"}}] or '
        '[{"action": "keep", "conditions": [{"field": "properties.plan", "op": "eq", "value": "pro"}]}].',
    )
    consent_categories = forms.CharField(
        required=False, help_text="Consent categories an end user must have granted, comma-separated."
    )
    integration_name = forms.CharField(
        required=False,
        max_length=200,
        help_text="The name the integrations object uses for this destination.",
    )

    def __init__(self, *args, workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["sources"].choices = [(str(s.id), s.name) for s in workspace.sources.order_by("name")]

    def credentials_to_retype(self) -> str:
        """The note for a form shown again after an error when credentials had been typed into it."""
        typed = self.is_bound and str(self.data.get(self.add_prefix("credentials"), "")).strip()
        return CREDENTIALS_RETYPE if typed and self.errors else ""

    @staticmethod
    def initial_for(destination) -> dict:
        return {
            "name": destination.name,
            "kind": destination.kind,
            "endpoint": destination.endpoint,
            "sources": [str(i) for i in destination.sources.values_list("id", flat=True)],
            "enabled": destination.enabled,
            "batch_size": destination.batch_size,
            "max_retries": destination.max_retries,
            "rate_limit": destination.rate_limit,
            "settings": destination.settings,
            "filters": destination.filters,
            "consent_categories": ", ".join(destination.consent_categories),
            "integration_name": destination.integration_name,
        }

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        data["sources"] = list(self.workspace.sources.filter(id__in=[int(i) for i in data["sources"]]))
        data["consent_categories"] = _names(data["consent_categories"])
        if data["credentials"] is None:  # blank keeps the stored credentials
            del data["credentials"]
        return data


class MappingForm(ConfigForm):
    field_names = {"trigger": "conditions", "fields": "fields_map"}

    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True)
    types = forms.MultipleChoiceField(
        choices=TYPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Message types",
        help_text="None checked: every type.",
    )
    events = forms.CharField(
        required=False,
        label="Track event names",
        help_text="Comma-separated, e.g. Order Completed, Checkout Started. Blank: any event.",
    )
    conditions = JSONObjectField(
        empty=[],
        list_ok=True,
        help_text='All must hold: [{"field": "properties.plan", "op": "eq", "value": "pro"}];'
        " ops: eq, ne, exists, in, contains.",
    )
    fields_map = JSONObjectField(
        empty={},
        label="Fields",
        help_text='Target field → path in the message, e.g. {"email": "traits.email"}.'
        " Blank sends the whole event.",
    )

    @staticmethod
    def initial_for(mapping) -> dict:
        trigger = mapping.trigger or {}
        as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
        return {
            "name": mapping.name,
            "enabled": mapping.enabled,
            "types": as_list(trigger.get("type")),
            "events": ", ".join(as_list(trigger.get("event"))),
            "conditions": trigger.get("conditions") or [],
            "fields_map": mapping.fields,
        }

    def changes(self) -> dict:
        data = self.cleaned_data
        trigger: dict = {}
        if data["types"]:
            trigger["type"] = data["types"]
        if events := _names(data["events"]):
            trigger["event"] = events
        if data["conditions"]:
            trigger["conditions"] = data["conditions"]
        return {
            "name": data["name"],
            "enabled": data["enabled"],
            "trigger": trigger,
            "fields": data["fields_map"],
        }


class AlertRuleForm(ConfigForm):
    threshold = forms.FloatField(help_text="")
    min_volume = forms.IntegerField(
        initial=0,
        min_value=0,
        label="Minimum volume",
        help_text="Below this many events the figure is not judged, so a quiet connection pages no one.",
    )
    channels = forms.MultipleChoiceField(
        choices=Channel.choices, widget=forms.CheckboxSelectMultiple, initial=[Channel.IN_APP, Channel.EMAIL]
    )
    email_recipients = forms.CharField(
        required=False,
        label="Email to",
        help_text="Comma-separated addresses. Blank: every member of the workspace.",
    )
    slack_webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Slack webhook URL",
        help_text="A Slack-compatible incoming webhook. Write-only: leave blank to keep the current one.",
        widget=forms.URLInput(
            attrs={"autocomplete": "off", "placeholder": "https://hooks.slack.com/services/…"}
        ),
    )
    muted = forms.BooleanField(required=False, help_text="Still evaluated and recorded; nobody is notified.")

    def __init__(self, *args, kind: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        threshold, min_volume = self.fields["threshold"], self.fields["min_volume"]
        if kind == "delivery_rate":
            threshold.label, threshold.initial = "Alert when the delivery success rate is below (%)", 99
            min_volume.help_text = (
                "Fewer finished deliveries in 24 hours are not judged: a quiet destination pages no one."
            )
        else:
            threshold.label, threshold.initial = (
                "Alert when volume is more than this % above or below usual",
                50,
            )
            min_volume.help_text = (
                "A usual hourly level below this is not judged: a quiet source pages no one."
            )

    @staticmethod
    def initial_for(rule) -> dict:
        return {
            "threshold": rule.threshold,
            "min_volume": rule.min_volume,
            "channels": rule.channels,
            "email_recipients": ", ".join(rule.email_recipients),
            "muted": rule.muted,
        }

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        data["email_recipients"] = _names(data["email_recipients"])
        if not data["slack_webhook_url"]:  # blank keeps the stored webhook
            del data["slack_webhook_url"]
        return data
