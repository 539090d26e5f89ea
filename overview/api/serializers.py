"""Serializers of the configuration API: they parse strict JSON input (unknown or read-only fields and
wrong JSON types answer 400 with a message per field), hand it to overview.configuration's checks with
its messages under the same field names, and save through it. Credentials and webhook URLs are write-only."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from delivery import throttle
from delivery.models import Destination, Mapping, Source, Workspace
from delivery.steps import EVENT_TYPES
from overview import notify, tenancy
from overview.api.strict import (
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictModelSerializer,
    checked,
    checked_rules,
)
from overview.configuration import alert_rules, destinations, mappings, sources
from overview.configuration.common import INTEGER_MAX, check_endpoint, keeps_workspace, storable_json
from overview.models import AlertRule, Channel, ChannelDelivery, Incident, IncidentEvent
from overview.parameters import MAX_ID

# ---------------------------------------------------------------------------------------------------
# Workspaces and sources


class WorkspaceSerializer(StrictModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role here: owner (reads and writes) or viewer.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "role", "created_at"]
        read_only_fields = ["slug", "created_at"]

    def get_role(self, workspace: Workspace) -> str:
        return tenancy.role_in(self.context["request"].user, workspace) or ""


class InScope(serializers.PrimaryKeyRelatedField):
    """An id among the caller's workspaces' rows: another workspace's id is "does not exist"."""

    def __init__(self, model, **kwargs) -> None:
        self.model = model
        super().__init__(**kwargs)

    def get_queryset(self):
        return tenancy.scoped(self.model, self.context["request"].user)


class SourceSerializer(StrictModelSerializer):
    workspace = InScope(Workspace, help_text="Set on creation; a source does not move between workspaces.")
    blocked_event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        help_text="Message types this source drops (filtered at source, reason event_setting).",
    )
    tracking_plan = serializers.DictField(
        child=serializers.DictField(),
        required=False,
        help_text="Track event name -> JSON Schema of the whole message.",
    )
    common_schema = serializers.DictField(required=False, help_text="A JSON Schema every message must meet.")
    allowed_origins = serializers.ListField(
        child=StrictCharField(max_length=300),
        required=False,
        help_text='Web origins whose pages may send with this write key, e.g. ["https://shop.example"];'
        " empty (the default): any. A request from another origin is refused with 403 origin_not_allowed;"
        " server-side clients send no Origin and are not affected.",
    )

    class Meta:
        model = Source
        fields = [
            "id", "workspace", "name", "write_key", "enabled", "blocked_event_types", "tracking_plan",
            "common_schema", "block_unplanned_events", "block_schema_violations", "allowed_origins",
            "created_at",
        ]  # fmt: skip
        read_only_fields = ["write_key", "created_at"]

    def validate_workspace(self, workspace: Workspace) -> Workspace:
        return checked(keeps_workspace("source", self.instance), workspace)

    def validate_blocked_event_types(self, value: list[str]) -> list[str]:
        return checked(sources.check_blocked_event_types, value)

    def validate_tracking_plan(self, plan: dict) -> dict:
        return checked(sources.check_tracking_plan, plan)

    def validate_allowed_origins(self, origins: list[str]) -> list[str]:
        return checked(sources.check_allowed_origins, origins)

    def validate_common_schema(self, schema: dict) -> dict:
        return checked(sources.check_common_schema, schema)

    def create(self, validated_data: dict) -> Source:
        return sources.save(validated_data)

    def update(self, instance: Source, validated_data: dict) -> Source:
        return sources.save(validated_data, instance)


# ---------------------------------------------------------------------------------------------------
# Destinations and mappings


class DeliveryStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(["sending", "paused", "circuit_open"])
    paused_until = serializers.DateTimeField(allow_null=True)
    pause_status = serializers.IntegerField(allow_null=True)
    pause_message = serializers.CharField()
    circuit_opened_at = serializers.DateTimeField(allow_null=True)
    next_probe_at = serializers.DateTimeField(allow_null=True)
    failures_in_a_row = serializers.IntegerField()
    last_failure = serializers.CharField()
    rate_limit = serializers.IntegerField(allow_null=True)


class DestinationSerializer(StrictModelSerializer):
    workspace = InScope(
        Workspace, help_text="Set on creation; a destination does not move between workspaces."
    )
    sources = InScope(Source, many=True, required=False, help_text="Ids of the sources whose events go here.")
    settings = serializers.DictField(required=False, help_text="Kind-specific settings that are not secret.")
    credentials = serializers.DictField(
        write_only=True,
        required=False,
        help_text="Secrets (API keys, auth headers). Write-only: never returned; omit to keep the current"
        " ones.",
    )
    has_credentials = serializers.SerializerMethodField(help_text="Whether credentials are set.")
    filters = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='Destination filter rules, in order: [{"action": "drop"|"keep", "conditions": '
        '[{"field": "properties.plan", "op": "eq"|"ne"|"exists"|"in"|"contains", "value": ...}]}]. '
        'Shorthand for eq conditions: {"action": "drop", "if": {"type": "page"}}. '
        "See docs/sending-events.md, Filter rules and mapping triggers.",
    )
    consent_categories = serializers.ListField(
        child=StrictCharField(max_length=destinations.MAX_CONSENT_CATEGORY), required=False
    )
    batch_size = StrictIntegerField(min_value=1, max_value=destinations.MAX_BATCH_SIZE, required=False)
    max_retries = StrictIntegerField(min_value=0, max_value=destinations.MAX_RETRIES, required=False)
    rate_limit = StrictIntegerField(
        min_value=1,
        max_value=destinations.MAX_RATE_LIMIT,
        required=False,
        allow_null=True,
        help_text="At most this many events a second to the destination, over all its mappings; null: no"
        " limit.",
    )
    delivery_state = serializers.SerializerMethodField(
        help_text="What holds sending back now: state sending|paused|circuit_open, paused_until and the"
        " pause's status and message, circuit_opened_at, next_probe_at, failures_in_a_row, last_failure,"
        " rate_limit."
    )

    class Meta:
        model = Destination
        fields = [
            "id", "workspace", "name", "kind", "endpoint", "settings", "credentials", "has_credentials",
            "sources", "batch_size", "max_retries", "rate_limit", "enabled", "filters", "consent_categories",
            "integration_name", "delivery_state", "created_at",
        ]  # fmt: skip
        read_only_fields = ["created_at"]

    def get_has_credentials(self, destination: Destination) -> bool:
        return bool(destination.credentials_encrypted)

    @extend_schema_field(DeliveryStateSerializer)
    def get_delivery_state(self, destination: Destination) -> dict:
        return DeliveryStateSerializer(throttle.shown(destination).as_json()).data

    def validate_workspace(self, workspace: Workspace) -> Workspace:
        return checked(keeps_workspace("destination", self.instance), workspace)

    def validate_endpoint(self, url: str) -> str:
        return checked(check_endpoint, url)

    def validate_settings(self, value: dict) -> dict:
        return checked(storable_json, value)

    def validate_credentials(self, value: dict) -> dict:
        return checked(storable_json, value)

    def validate_filters(self, value: list) -> list:
        return checked(destinations.check_filters, value)

    def validate(self, attrs: dict) -> dict:
        return checked_rules(destinations.check_rules, attrs, self.instance)

    def create(self, validated_data: dict) -> Destination:
        return destinations.save(validated_data)

    def update(self, instance: Destination, validated_data: dict) -> Destination:
        return destinations.save(validated_data, instance)


class MappingSerializer(StrictModelSerializer):
    trigger = serializers.DictField(
        required=False,
        help_text='Which events this mapping sends: {} for all, or {"type": [...], "event": [...], '
        '"conditions": [{"field": ..., "op": ..., "value": ...}]}, conditions as in destination filters.',
    )

    class Meta:
        model = Mapping
        fields = ["id", "destination", "name", "trigger", "fields", "enabled", "created_at"]
        read_only_fields = ["destination", "created_at"]

    def get_fields(self) -> dict:
        # The model's `fields` cannot be declared on the class: it would shadow Serializer.fields.
        declared = super().get_fields()
        declared["fields"] = serializers.DictField(
            child=StrictCharField(max_length=mappings.MAX_FIELD_PATH),
            required=False,
            help_text='Target field -> path in the message, e.g. {"email": "traits.email"}; {} sends the'
            " whole event.",
        )
        return declared

    def validate_trigger(self, value: dict) -> dict:
        return checked(mappings.check_trigger, value)

    def validate_fields(self, value: dict) -> dict:
        return checked(mappings.check_fields, value)

    def create(self, validated_data: dict) -> Mapping:
        return mappings.save(validated_data)

    def update(self, instance: Mapping, validated_data: dict) -> Mapping:
        return mappings.save(validated_data, instance)


# ---------------------------------------------------------------------------------------------------
# Alerts


class ChannelDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelDelivery
        fields = ["channel", "target", "status", "attempts", "last_error", "errors", "sent_at"]


class IncidentEventSerializer(serializers.ModelSerializer):
    deliveries = ChannelDeliverySerializer(many=True, read_only=True)

    class Meta:
        model = IncidentEvent
        fields = ["kind", "at", "value", "volume", "message", "deliveries"]


class IncidentSerializer(serializers.ModelSerializer):
    overview_url = serializers.SerializerMethodField(help_text="The overview at the moment it broke.")
    timeline = IncidentEventSerializer(source="events", many=True, read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id", "rule", "workspace", "kind", "destination", "source", "summary", "status", "threshold",
            "opened_at", "resolved_at", "opened_value", "worst_value", "resolved_value", "window_start",
            "window_end", "overview_url", "timeline",
        ]  # fmt: skip
        read_only_fields = fields

    def get_overview_url(self, incident: Incident) -> str:
        return notify.overview_url(incident)


class AlertRuleSerializer(StrictModelSerializer):
    destination = InScope(
        Destination,
        required=False,
        allow_null=True,
        help_text="For delivery_rate rules: the destination watched.",
    )
    source = InScope(
        Source, required=False, allow_null=True, help_text="For source_volume rules: the source watched."
    )
    threshold = StrictFloatField(
        help_text="delivery_rate: alert when the delivery success rate (delivered ÷ (delivered + failed "
        "delivery), each event once) over 24 hours is below this %. "
        "source_volume: alert when the last hour's volume is more than this % above or below its usual level."
    )
    min_volume = StrictIntegerField(
        min_value=0,
        max_value=INTEGER_MAX,
        required=False,
        help_text="Fewer finished deliveries (delivery_rate) or a lower usual level (source_volume):"
        " not judged.",
    )
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), required=False)
    email_recipients = serializers.ListField(child=serializers.EmailField(), required=False)
    slack_webhook_url = serializers.URLField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=alert_rules.MAX_WEBHOOK_URL,
        help_text="Slack-compatible incoming webhook. Write-only: omit to keep the current one, ''"
        " to remove.",
    )
    has_slack_webhook = serializers.SerializerMethodField()
    open_incident = serializers.SerializerMethodField(help_text="Id of the open incident, if any.")

    class Meta:
        model = AlertRule
        fields = [
            "id", "workspace", "kind", "destination", "source", "description", "threshold", "min_volume",
            "channels", "email_recipients", "slack_webhook_url", "has_slack_webhook", "muted", "state",
            "open_incident", "last_evaluated_at", "last_value", "last_volume", "last_text", "last_note",
            "created_at",
        ]  # fmt: skip
        read_only_fields = [
            "workspace", "description", "state", "last_evaluated_at", "last_value", "last_volume",
            "last_text", "last_note", "created_at",
        ]  # fmt: skip
        extra_kwargs = {
            "last_text": {"help_text": "The last evaluation's figure in words."},
            "last_note": {
                "help_text": "Why the last evaluation did not judge the figure (state stays ok): "
                "'not enough history yet', 'no usual volume to compare with', 'under the minimum volume', "
                "'no finished deliveries yet'; '' when it was judged."
            },
        }

    def get_has_slack_webhook(self, rule: AlertRule) -> bool:
        return bool(rule.slack_webhook_encrypted)

    def get_open_incident(self, rule: AlertRule) -> int | None:
        incident = rule.incidents.filter(status=Incident.Status.OPEN).only("id").first()
        return incident.id if incident else None

    def validate_channels(self, value: list[str]) -> list[str]:
        return checked(alert_rules.check_channels, value)

    def validate_slack_webhook_url(self, url: str) -> str:
        return checked(alert_rules.check_slack_webhook_url, url)

    def validate(self, attrs: dict) -> dict:
        return checked_rules(alert_rules.check_rules, attrs, self.instance)

    def create(self, validated_data: dict) -> AlertRule:
        return alert_rules.save(validated_data)

    def update(self, instance: AlertRule, validated_data: dict) -> AlertRule:
        return alert_rules.save(validated_data, instance)


class IncidentFilterSerializer(serializers.Serializer):
    """Query parameters of the incident list."""

    status = serializers.ChoiceField(choices=Incident.Status.choices, required=False)
    rule = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    destination = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    source = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
