"""Alerting: rules on a destination's delivery success rate or a source's volume, the incidents they
open, each incident's timeline, and every notification sent (or failed) about it. And the operators'
bulk retries of failed deliveries.

The rules' evaluation lives in `overview/alerts.py`, the channels in `overview/notify.py`, the retries in
`overview/retries.py`.
"""

from django.conf import settings
from django.db import models

from delivery import crypto
from delivery.models import Destination, Source, Workspace


class Channel(models.TextChoices):
    IN_APP = "in_app", "In-app notification"
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack incoming webhook"


def figure_text(kind: str, value: float | None) -> str:
    """A rule's figure as pages show it: a rate in %, or a volume change in signed %."""
    if value is None:
        return "—"
    return f"{value:.1f}%" if kind == AlertRule.Kind.DELIVERY_RATE else f"{value:+.1f}%"


def threshold_text(kind: str, threshold: float) -> str:
    """The rule's threshold in words, as messages and pages show it."""
    if kind == AlertRule.Kind.DELIVERY_RATE:
        return f"alert below {threshold:g}%"
    return f"alert when more than {threshold:g}% above or below the usual level"


class AlertRule(models.Model):
    class Kind(models.TextChoices):
        DELIVERY_RATE = "delivery_rate", "Delivery success rate"
        SOURCE_VOLUME = "source_volume", "Source volume"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FIRING = "firing", "Firing"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Exactly one of the two, matching `kind` (a check constraint keeps them consistent).
    destination = models.ForeignKey(
        Destination, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    # delivery_rate: breached when the rate is below this %; source_volume: when volume is off by more.
    threshold = models.FloatField()
    # Fewer events than this in the window (delivery rate) or in the usual level (volume): not judged.
    min_volume = models.PositiveIntegerField(default=0)
    channels = models.JSONField(default=list, blank=True)  # Channel values
    # Email addresses; empty means every member of the workspace who has an email address.
    email_recipients = models.JSONField(default=list, blank=True)
    # The Slack webhook URL carries its own secret: encrypted at rest like destination credentials.
    slack_webhook_encrypted = models.TextField(blank=True, default="", editable=False)
    muted = models.BooleanField(default=False)  # evaluated and recorded, but nobody is notified

    state = models.CharField(max_length=10, choices=State.choices, default=State.OK, editable=False)
    # Consecutive recovered evaluations while firing; two resolve the incident (see alerts.py).
    recovered_checks = models.PositiveSmallIntegerField(default=0, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_volume = models.BigIntegerField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    # The last evaluation's figure in words, and why it was not judged ("" when it was): a volume rule
    # without a usual level yet is "not enough history yet", not OK.
    last_text = models.TextField(blank=True, default="", editable=False)
    last_note = models.CharField(max_length=60, blank=True, default="", editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                name="alert_rule_subject_matches_kind",
                condition=(
                    models.Q(kind="delivery_rate", destination__isnull=False, source__isnull=True)
                    | models.Q(kind="source_volume", source__isnull=False, destination__isnull=True)
                ),
            )
        ]

    def __str__(self) -> str:
        return self.description

    @property
    def subject(self) -> Destination | Source:
        return self.destination if self.kind == self.Kind.DELIVERY_RATE else self.source

    @property
    def description(self) -> str:
        if self.kind == self.Kind.DELIVERY_RATE:
            return f"Delivery success rate of {self.destination} below {self.threshold:g}% over 24 hours"
        return f"Volume of {self.source} more than {self.threshold:g}% off its usual level"

    @property
    def threshold_text(self) -> str:
        return threshold_text(self.kind, self.threshold)

    @property
    def last_value_text(self) -> str:
        return figure_text(self.kind, self.last_value)

    @property
    def slack_webhook_url(self) -> str:
        return crypto.decrypt_json(self.slack_webhook_encrypted).get("url", "")

    @slack_webhook_url.setter
    def slack_webhook_url(self, value: str) -> None:
        self.slack_webhook_encrypted = crypto.encrypt_json({"url": value} if value else {})

    def get_additional_data(self) -> dict:
        """Kept with its change-log entries (overview.changes), so its destination or source lists them."""
        return {"destination_id": self.destination_id, "source_id": self.source_id}


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    # Incidents outlive their rule: deleting a rule resolves its open incident and keeps the record.
    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="incidents")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="incidents")
    destination = models.ForeignKey(
        Destination, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    kind = models.CharField(max_length=20, choices=AlertRule.Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # The rule as it stood when the incident opened, so the record reads right after the rule changes.
    summary = models.CharField(max_length=300)
    threshold = models.FloatField()
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The figure when it broke, its worst value while open, and when it recovered.
    opened_value = models.FloatField(null=True)
    worst_value = models.FloatField(null=True)
    resolved_value = models.FloatField(null=True, blank=True)
    # The window the figure was measured over when it broke (the overview link shows it).
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # One open incident per rule: evaluation never opens a second while one is open.
            models.UniqueConstraint(
                fields=["rule"], condition=models.Q(status="open"), name="one_open_incident_per_rule"
            )
        ]
        indexes = [models.Index(fields=["workspace", "-opened_at"], name="incident_workspace_recent")]

    def __str__(self) -> str:
        return f"{self.summary} ({self.status})"

    @property
    def threshold_text(self) -> str:
        return threshold_text(self.kind, self.threshold)

    @property
    def opened_text(self) -> str:
        return figure_text(self.kind, self.opened_value)

    @property
    def worst_text(self) -> str:
        return figure_text(self.kind, self.worst_value)

    @property
    def resolved_text(self) -> str:
        return figure_text(self.kind, self.resolved_value)


class IncidentEvent(models.Model):
    """One line of an incident's timeline."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        RECOVERING = "recovering", "Recovering"
        RELAPSED = "relapsed", "Breached again"
        RESOLVED = "resolved", "Resolved"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField()
    value = models.FloatField(null=True)
    volume = models.BigIntegerField(null=True)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class ChannelDelivery(models.Model):
    """Sending one incident change to one channel: an outbox row, claimed before each attempt, whose
    status, attempts and errors stay visible on the incident."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Failed, will retry"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(IncidentEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=500, blank=True, default="")  # shown: addresses, or the webhook host
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # [{"at": iso time, "error": "..."}] for every failed attempt, so a retried failure is not lost.
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Serves the sweeper's query for deliveries whose task message was lost.
        indexes = [models.Index(fields=["status", "updated_at"], name="channel_delivery_status")]

    def __str__(self) -> str:
        return f"{self.channel} → {self.target}: {self.status}"


class Notification(models.Model):
    """An in-app notification for one operator."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notifications")
    incident = models.ForeignKey(Incident, null=True, on_delete=models.CASCADE, related_name="notifications")
    title = models.CharField(max_length=300)
    body = models.TextField()
    link = models.URLField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Serves the unread count in the page header.
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.title


class ApiToken(models.Model):
    """An operator's REST API token. Only the SHA-256 digest of the key is stored (overview/api/tokens.py):
    a database dump or a reader of this table cannot call the API as anyone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    # Hex SHA-256 of the key; authentication looks the presented key's digest up by this unique index.
    digest = models.CharField(max_length=64, unique=True)
    # The key's first characters, shown on the token page so an operator can tell which key is active.
    prefix = models.CharField(max_length=8)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class RetryJob(models.Model):
    """A bulk retry of a destination's failed deliveries, or a re-route of the events it filtered
    (overview.retries): the filter it was given and its progress. The outcome rows it put back in the
    outbox carry its id (delivery_outcome.retry_job_id), which is how its delivered and failed counts
    are read."""

    class Kind(models.TextChoices):
        RETRY = "retry", "Retry of failed deliveries"
        REROUTE = "reroute", "Re-route of filtered events"

    class State(models.TextChoices):
        RUNNING = "running", "Queueing"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="retry_jobs")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="retry_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RETRY)
    # As given (overview.retries.Filter): mapping, reason, status, error type, event name, event, times
    filters = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    # A retry counts deliveries (event x mapping); a re-route counts events (each may reach several mappings)
    total = models.IntegerField(default=0)  # failed deliveries (filtered events) it matched when it started
    queued = models.IntegerField(default=0)  # put back in the outbox (re-routed to at least one mapping)
    skipped = models.IntegerField(default=0)  # no longer failed when reached (still, or no longer, filtered)
    # Where the job has got to, newest first: the last outcome it went through
    after_received_at = models.DateTimeField(null=True, blank=True)
    after_outcome_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)  # its last step: a running job long still was lost
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["destination", "-created_at"], name="retryjob_destination")]

    def __str__(self) -> str:
        return f"retry {self.id} of {self.destination_id} ({self.state})"


class SingleSignOnIdentity(models.Model):
    """Who an account is at the OpenID Connect provider (overview/sso): the provider's issuer and its
    `sub`, the one identifier it promises never to reassign. Sign-ins are matched by this pair, never
    by email: an address can change hands or be set unverified at the provider, so matching on it
    would let someone take over another person's account."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Serves the sign-in's lookup by (issuer, subject), and makes the pair one account.
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_subject")]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"
