"""Notification channels: in-app, email (Django's email backend) and Slack-compatible incoming webhooks.

Each channel is a small class with `target(rule)` (what the operator sees it was sent to) and
`send(rule, message)`, registered in CHANNELS. `send(delivery_id)` claims one ChannelDelivery row (an
outbox: pending/retrying -> sending, by a conditional update, so a redelivered task never sends twice),
sends it (webhooks through the pipeline's outbound client, delivery.http: timeouts, no private
addresses) and records the result; a failed attempt is recorded on the row and retried by the Celery task
with backoff, and the last error stays visible on the incident.
"""

import datetime as dt
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from delivery import http
from overview.models import AlertRule, Channel, ChannelDelivery, Incident, IncidentEvent, Notification

log = logging.getLogger(__name__)

# Seconds before each retry of a failed channel: 6 attempts over about 40 minutes.
RETRY_DELAYS = (5, 30, 120, 600, 1800)
# A delivery untouched this long while pending/retrying/sending lost its task message: the sweeper resends.
LOST_AFTER = dt.timedelta(hours=1)


class ChannelError(Exception):
    """A channel could not deliver a message; `permanent` errors are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# ---------------------------------------------------------------------------------------------------
# What is said


@dataclass(frozen=True)
class Message:
    subject: str
    text: str  # for email and Slack: with the time in UTC and the overview's full URL
    link: str
    page_text: str = ""  # for the in-app list, which shows the time in the reader's zone


def overview_path(incident: Incident) -> str:
    """The dashboard page of the incident's destination or source (the workspace's, once it is deleted)."""
    if incident.destination_id:
        return reverse("destination_overview", args=[incident.workspace.slug, incident.destination_id])
    if incident.source_id:
        return reverse("source_overview", args=[incident.workspace.slug, incident.source_id])
    return reverse("workspace", args=[incident.workspace.slug])


def overview_link(incident: Incident) -> str:
    """The overview at the moment it broke: the incident's window as a custom range (a relative URL)."""
    query = urlencode(
        {
            "start": incident.window_start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": incident.window_end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    return f"{overview_path(incident)}?{query}"


def overview_url(incident: Incident) -> str:
    """overview_link on this site's public URL, for messages read outside the site."""
    return f"{settings.SITE_URL}{overview_link(incident)}"


def _subject_name(incident: Incident) -> tuple[str, str]:
    if incident.kind == AlertRule.Kind.DELIVERY_RATE:
        return "Destination", incident.destination.name if incident.destination else "(deleted)"
    return "Source", incident.source.name if incident.source else "(deleted)"


def _short_figure(incident: Incident, value: float | None) -> str:
    if value is None:
        return "not measured"
    if incident.kind == AlertRule.Kind.DELIVERY_RATE:
        return f"delivery success rate {value:.1f}%"
    return f"volume {abs(value):.1f}% {'above' if value >= 0 else 'below'} its usual level"


def message_for(event: IncidentEvent) -> Message:
    incident = event.incident
    what, name = _subject_name(incident)
    threshold = incident.threshold_text
    link = overview_url(incident)
    figure = _short_figure(incident, event.value)
    if event.kind == IncidentEvent.Kind.RESOLVED:
        subject = f"Resolved: {name} {figure} ({threshold})"
    else:
        subject = f"Alert: {name} {figure} ({threshold})"
    about = [
        f"{what} {name!r} in workspace {incident.workspace.name}.",
        event.message,
        f"Rule: {incident.summary}.",
    ]
    text = "\n".join(
        [
            *about,
            f"{event.get_kind_display()} at {event.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.",
            f"The overview at the moment it broke: {link}",
        ]
    )
    # In-app, the page shows the time in the operator's zone and links the incident: no UTC time here.
    return Message(subject, text, link, "\n".join(about))


# ---------------------------------------------------------------------------------------------------
# The channels


def _members(rule: AlertRule):
    return get_user_model().objects.filter(memberships__workspace_id=rule.workspace_id).order_by("id")


class InApp:
    def target(self, rule: AlertRule) -> str:
        return f"members of {rule.workspace.name}"

    def send(self, rule: AlertRule, message: Message, incident: Incident) -> None:
        Notification.objects.bulk_create(
            Notification(
                user=user,
                workspace_id=rule.workspace_id,
                incident=incident,
                title=message.subject,
                body=message.page_text or message.text,
                link=message.link,
            )
            for user in _members(rule)
        )


class Email:
    def recipients(self, rule: AlertRule) -> list[str]:
        return list(rule.email_recipients) or [u.email for u in _members(rule) if u.email]

    def target(self, rule: AlertRule) -> str:
        return ", ".join(self.recipients(rule))[:500] or "(no addresses)"

    def send(self, rule: AlertRule, message: Message, incident: Incident) -> None:
        recipients = self.recipients(rule)
        if not recipients:
            raise ChannelError(
                "No recipients: add addresses to the rule or to the members' accounts.", permanent=True
            )
        email = EmailMessage(message.subject, message.text, settings.DEFAULT_FROM_EMAIL, recipients)
        try:
            email.send()
        except OSError as error:  # smtplib's errors are OSErrors
            raise ChannelError(f"The mail server refused the message: {error}") from error


class SlackWebhook:
    def target(self, rule: AlertRule) -> str:
        url = rule.slack_webhook_url
        return f"webhook at {urlsplit(url).hostname}" if url else "(no webhook URL)"

    def payload(self, message: Message) -> dict:
        return {"text": f"*{message.subject}*\n{message.text}\n<{message.link}|Open the overview>"}

    def send(self, rule: AlertRule, message: Message, incident: Incident) -> None:
        url = rule.slack_webhook_url
        if not url:
            raise ChannelError("The rule has no Slack webhook URL.", permanent=True)
        body = json.dumps(self.payload(message)).encode()
        try:
            answer = http.post(http.OutboundRequest(url, body))
        except (http.PrivateAddressError, http.InvalidURLError) as refused:
            raise ChannelError(f"The webhook URL is refused: {refused}.", permanent=True) from refused
        except (http.HostNotFoundError, httpx.TransportError) as error:
            raise ChannelError(
                f"The webhook could not be reached ({type(error).__name__}): {error}"
            ) from error
        if 200 <= answer.status < 300:
            return
        detail = f"The webhook answered {answer.status}: {answer.text[:200]}"
        # Slack answers 4xx for a revoked or mistyped webhook: retrying cannot help. 429 and 5xx can pass.
        retryable = answer.status == 429 or answer.status >= 500
        raise ChannelError(detail, permanent=not retryable)


CHANNELS = {Channel.IN_APP: InApp(), Channel.EMAIL: Email(), Channel.SLACK: SlackWebhook()}


def target_of(rule: AlertRule, channel: str) -> str:
    return CHANNELS[channel].target(rule)


# ---------------------------------------------------------------------------------------------------
# Sending, recorded


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    status: str  # the delivery's status afterwards; "" when it was not ours to send
    error: str = ""
    retry: bool = False  # the caller should try again later


def claim(delivery_id: int) -> ChannelDelivery | None:
    claimed = ChannelDelivery.objects.filter(
        id=delivery_id, status__in=[ChannelDelivery.Status.PENDING, ChannelDelivery.Status.RETRYING]
    ).update(status=ChannelDelivery.Status.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now())
    if not claimed:
        return None
    return ChannelDelivery.objects.select_related(
        "event__incident__rule__workspace",
        "event__incident__workspace",
        "event__incident__destination",
        "event__incident__source",
    ).get(id=delivery_id)


def send(delivery_id: int, *, final: bool = True) -> SendResult:
    """Send one notification. `final=False` leaves a retryable failure as `retrying` for another go."""
    delivery = claim(delivery_id)
    if delivery is None:
        return SendResult(delivery_id, "")
    incident = delivery.event.incident
    try:
        if incident.rule is None:
            raise ChannelError("The rule was deleted before this notification was sent.", permanent=True)
        CHANNELS[delivery.channel].send(incident.rule, message_for(delivery.event), incident)
    except ChannelError as error:
        retry = not (final or error.permanent)
        status = ChannelDelivery.Status.RETRYING if retry else ChannelDelivery.Status.FAILED
        delivery.errors = [*delivery.errors, {"at": timezone.now().isoformat(), "error": str(error)}]
        delivery.status, delivery.last_error = status, str(error)
        delivery.save(update_fields=["status", "last_error", "errors", "updated_at"])
        log.warning("alert notification %s via %s failed (attempt %s): %s", delivery.id, delivery.channel,
                    delivery.attempts, error)  # fmt: skip
        return SendResult(delivery.id, status, str(error), retry)
    delivery.status, delivery.sent_at = ChannelDelivery.Status.SENT, timezone.now()
    delivery.save(update_fields=["status", "sent_at", "updated_at"])
    return SendResult(delivery.id, delivery.status)


def lost_delivery_ids(now: dt.datetime) -> list[int]:
    """Deliveries whose task message was lost (worker killed mid-send, broker restarted): back to retrying."""
    unfinished = [
        ChannelDelivery.Status.PENDING,
        ChannelDelivery.Status.RETRYING,
        ChannelDelivery.Status.SENDING,
    ]
    stale = ChannelDelivery.objects.filter(
        status__in=unfinished,
        updated_at__lt=now - LOST_AFTER,
        attempts__lte=len(RETRY_DELAYS),
    )
    ids = list(stale.values_list("id", flat=True))
    ChannelDelivery.objects.filter(id__in=ids, status=ChannelDelivery.Status.SENDING).update(
        status=ChannelDelivery.Status.RETRYING
    )
    return ids
