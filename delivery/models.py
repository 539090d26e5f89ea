"""Configuration (workspaces, sources, destinations, mappings) and the pipeline's record of every event.

Event, Outcome, Rollup, RollupHourly, Sample and SeenMessage are partitioned by day in PostgreSQL
(migration 0002) and mapped here with managed = False; retention drops whole partitions.
"""

import secrets

from django.conf import settings
from django.db import models

from delivery import crypto
from delivery.destinations.kinds import KIND_CHOICES


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class Workspace(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class Source(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    # Sent as the HTTP basic-auth user name by analytics clients; unique index serves ingest's lookup.
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key, editable=False)
    enabled = models.BooleanField(default=True)
    # Schema controls (filtered at source): message types to drop, e.g. ["page", "screen"].
    blocked_event_types = models.JSONField(default=list, blank=True)
    # Tracking plan: event name -> JSON Schema of the whole message; "common" schema applies to all.
    tracking_plan = models.JSONField(default=dict, blank=True)
    common_schema = models.JSONField(default=dict, blank=True)
    block_unplanned_events = models.BooleanField(default=False)
    block_schema_violations = models.BooleanField(default=False)
    # Web origins ("https://shop.example") whose pages may post with this write key; empty: any, as
    # hosted collectors allow (the key is public in the page). Server-side clients send no Origin.
    allowed_origins = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Destination(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="destinations")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40, choices=KIND_CHOICES)
    endpoint = models.URLField(max_length=500)
    # Kind-specific settings that are not secret (e.g. region, extra headers' names).
    settings = models.JSONField(default=dict, blank=True)
    # Secrets (API keys, auth headers), encrypted at rest; read and written through .credentials.
    credentials_encrypted = models.TextField(blank=True, default="", editable=False)
    sources = models.ManyToManyField(Source, related_name="destinations", blank=True)
    batch_size = models.PositiveIntegerField(default=100)
    max_retries = models.PositiveSmallIntegerField(default=6)
    # At most this many events a second are sent to the destination, over all its mappings (None: no
    # limit); see delivery.throttle.
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # Destination filters: [{"action": "drop"|"keep", "conditions": [...]}]; format in delivery/filters.py.
    filters = models.JSONField(default=list, blank=True)
    # Consent categories an end user must have granted for events to go here, e.g. ["analytics"].
    consent_categories = models.JSONField(default=list, blank=True)
    # Name matched in a message's integrations object; defaults to the destination's name.
    integration_name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_encrypted)

    @credentials.setter
    def credentials(self, value: dict) -> None:
        self.credentials_encrypted = crypto.encrypt_json(value)


class DestinationThrottle(models.Model):
    """How delivery to a destination is held back now, over all its mappings (delivery.throttle): paused
    until a time the destination asked for (429, Retry-After), a circuit opened by repeated whole-request
    failures and probed now and then, and the rate limit's next free moment. One row per destination
    that has had any of these; none means nothing holds it back."""

    destination = models.OneToOneField(
        Destination, on_delete=models.CASCADE, primary_key=True, related_name="throttle"
    )
    paused_until = models.DateTimeField(null=True)
    pause_status = models.PositiveSmallIntegerField(null=True)  # the answer that paused it (429, 503, ...)
    pause_message = models.TextField(blank=True, default="")
    failures = models.PositiveIntegerField(default=0)  # whole-request failures in a row
    last_failure = models.TextField(blank=True, default="")
    circuit_opened_at = models.DateTimeField(null=True)
    next_probe_at = models.DateTimeField(null=True)  # while the circuit is open: when one batch may go
    send_after = models.DateTimeField(null=True)  # the rate limit: no batch starts before this
    updated_at = models.DateTimeField(auto_now=True)


class Mapping(models.Model):
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="mappings")
    name = models.CharField(max_length=200)
    # Which events this mapping sends: {"type": [...], "event": [...], "conditions": [...]}; {} matches all.
    # The format is documented in delivery/filters.py.
    trigger = models.JSONField(default=dict, blank=True)
    # Target field -> path in the message, e.g. {"email": "traits.email", "name": "event"}; {} sends all.
    fields = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.destination}: {self.name}"

    def get_additional_data(self) -> dict:
        """Kept with its change-log entries (overview.changes), so its destination lists them."""
        return {"destination_id": self.destination_id}


class Event(models.Model):
    """A received message, as stored. Primary key (received_at, id) in the database."""

    id = models.BigIntegerField(primary_key=True)
    received_at = models.DateTimeField()
    workspace_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    message_id = models.TextField()
    type = models.TextField()
    name = models.TextField(default="")
    app_version = models.TextField(default="")
    timestamp = models.DateTimeField(null=True)
    payload = models.JSONField()
    routed_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "delivery_event"


class Outcome(models.Model):
    """Where one event stands for one destination and mapping: the outbox of delivery work."""

    id = models.BigIntegerField(primary_key=True)
    received_at = models.DateTimeField()
    event_id = models.BigIntegerField()
    workspace_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    destination_id = models.BigIntegerField()
    mapping_id = models.BigIntegerField(null=True)
    event_type = models.TextField(default="")
    event_name = models.TextField(default="")
    app_version = models.TextField(default="")
    step = models.TextField()
    reason_code = models.TextField(default="")
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True)
    claimed_until = models.DateTimeField(null=True)
    status = models.IntegerField(null=True)
    error_type = models.TextField(default="")
    error_message = models.TextField(default="")
    updated_at = models.DateTimeField()
    fanout = models.SmallIntegerField(default=1)  # mappings of the destination the event reached
    retry_base = models.IntegerField(default=0)  # attempts it had when a bulk retry queued it again
    retry_job_id = models.BigIntegerField(null=True)  # that retry (overview.models.RetryJob)

    class Meta:
        managed = False
        db_table = "delivery_outcome"


class Rollup(models.Model):
    """Per-minute counters; every dashboard figure is a sum of these (or of RollupHourly)."""

    id = models.BigIntegerField(primary_key=True)
    minute = models.DateTimeField()
    workspace_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    destination_id = models.BigIntegerField(null=True)
    mapping_id = models.BigIntegerField(null=True)
    step = models.TextField()
    reason_code = models.TextField(default="")
    event_type = models.TextField(default="")
    event_name = models.TextField(default="")
    app_version = models.TextField(default="")
    count = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "delivery_rollup"


class RollupHourly(models.Model):
    """The same counters per hour, for ranges of days."""

    id = models.BigIntegerField(primary_key=True)
    minute = models.DateTimeField()  # the hour's first minute
    workspace_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    destination_id = models.BigIntegerField(null=True)
    mapping_id = models.BigIntegerField(null=True)
    step = models.TextField()
    reason_code = models.TextField(default="")
    event_type = models.TextField(default="")
    event_name = models.TextField(default="")
    app_version = models.TextField(default="")
    count = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "delivery_rollup_hourly"


class Sample(models.Model):
    """An example of what happened at a step for a reason: the event, what was sent, what came back."""

    id = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    bucket = models.DateTimeField()  # 10-minute bucket that bounds how many samples a key keeps
    workspace_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    destination_id = models.BigIntegerField(null=True)
    mapping_id = models.BigIntegerField(null=True)
    step = models.TextField()
    reason_code = models.TextField(default="")
    message_id = models.TextField(default="")
    event_type = models.TextField(default="")
    event_name = models.TextField(default="")
    app_version = models.TextField(default="")
    status = models.IntegerField(null=True)
    error_type = models.TextField(default="")
    error_message = models.TextField(default="")
    sent = models.JSONField(null=True)
    body = models.JSONField(null=True)
    response = models.JSONField(null=True)

    class Meta:
        managed = False
        db_table = "delivery_sample"


class SeenMessage(models.Model):
    """messageIds seen per source and day, for dropping repeats within 24 hours."""

    day = models.DateField(primary_key=True)
    source_id = models.BigIntegerField()
    message_id = models.TextField()
    seen_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "delivery_seenmessage"


class RefusedRequest(models.Model):
    """Requests the tracking API refused before it read any event (an unknown or missing write key, a
    body that is not JSON, too large, a page on an origin the source does not allow), counted per hour,
    source and code; for a write key no source has, per the key's first characters. One row per such
    group, so a flood of bad requests costs a counter, not a row each."""

    hour = models.DateTimeField()
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.CASCADE, related_name="refused_requests"
    )
    key_prefix = models.CharField(max_length=8, blank=True, default="")  # unknown write keys only
    code = models.CharField(max_length=40)
    status = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField()
    last_message = models.TextField(default="")
    last_origin = models.CharField(max_length=200, blank=True, default="")
    last_user_agent = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "source", "key_prefix", "code"],
                nulls_distinct=False,
                name="refused_request_per_hour",
            )
        ]
        indexes = [models.Index(fields=["key_prefix", "hour"], name="refused_request_key")]


class WorkerHeartbeat(models.Model):
    """A Celery worker seen alive: each worker writes its row every few seconds (delivery.heartbeats) and
    deletes it when it stops; one whose row is old stopped without saying so."""

    name = models.CharField(max_length=255, unique=True)  # Celery's node name, e.g. celery@host
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    version = models.CharField(max_length=40)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
