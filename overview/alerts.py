"""Alert evaluation: measure each rule's figure from the rollups (through `overview.figures`), open an
incident when it breaches, resolve it when it has recovered, and queue a notification per channel.

The two figures:
- Delivery success rate of a destination = delivered / (delivered + failed delivery) over the last
  24 hours, each event counted once across its mappings (delivery.fanout's rule); events still pending
  a retry are not counted yet, and the text says how many. Breached below the threshold. (Not the
  overview's delivered share of received.)
- Volume of a source = events received in the last 60 minutes, against its usual level: the mean of the
  same 60 minutes on each of the previous 7 days since the source was created. Breached when it is more
  than the threshold % above or below. (The current minute is still filling, so the figure reads up to
  ~1.7 % low for a few seconds; thresholds are whole percents.)

No flapping: a breach opens an incident at once, but it resolves only after two consecutive evaluations
with the figure recovered past a 1-point margin (rate >= threshold + 1, capped at 100; volume within
threshold - 1 %). A breach in between starts the count again ("breached again" on the timeline).
Below the rule's minimum volume (or without a usual level yet) the figure is not judged and counts as
recovered: a quiet destination neither pages anyone nor keeps an incident open.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from delivery import metrics
from delivery.models import Source
from delivery.steps import Step
from overview import notify, windows
from overview.figures.pipeline import pipeline
from overview.figures.results import delivery_rate
from overview.figures.rollup_query import Scope, source_scope
from overview.models import AlertRule, Channel, ChannelDelivery, Incident, IncidentEvent

RATE_RANGE = "24h"
VOLUME_WINDOW = dt.timedelta(minutes=60)
VOLUME_HISTORY_DAYS = 7
HYSTERESIS_POINTS = 1.0
RECOVERY_CHECKS = 2
# Why a figure was not judged (AlertRule.last_note), shown where the rule's state would say "OK".
NO_HISTORY = "not enough history yet"
NO_USUAL_VOLUME = "no usual volume to compare with"
UNDER_MINIMUM = "under the minimum volume"
NO_DELIVERIES = "no finished deliveries yet"
# The beat dispatcher runs every minute; a rule evaluated more recently than this is not due yet.
EVALUATE_EVERY = dt.timedelta(seconds=50)


@dataclass(frozen=True)
class Measurement:
    """A rule's figure at one evaluation."""

    value: float | None  # rate in %, or volume change in % (None: nothing to measure)
    volume: int  # events judged: delivered + failed, or received in the window
    window: windows.Window
    judged: bool  # False below the minimum volume or without a usual level
    breached: bool
    recovered: bool  # on the healthy side by the hysteresis margin (or not judged)
    text: str  # the figure in words, for the timeline and the messages
    baseline: float | None = None  # usual level (volume rules)
    note: str = ""  # why the figure was not judged, shown in place of "OK" ("" when it was)


@dataclass(frozen=True)
class Evaluation:
    rule_id: int
    measurement: Measurement | None  # None: the rule was not due, or is being evaluated elsewhere
    event: IncidentEvent | None = None  # the timeline entry this evaluation wrote, if any
    delivery_ids: tuple[int, ...] = ()  # notifications to send (opened or resolved)


def _rate_text(rate: float | None, delivered: int, failed: int, pending: int) -> str:
    waiting = f"{pending:,} pending retry"
    if rate is None:
        return f"no deliveries finished in the last 24 hours ({waiting})"
    return (
        f"{rate:.1f}% delivery success rate ({delivered:,} delivered, {failed:,} failed, {waiting})"
        " in the last 24 hours"
    )


def measure_delivery_rate(rule: AlertRule, now: dt.datetime) -> Measurement:
    window = windows.preset(RATE_RANGE, now)
    steps = (Step.PENDING_RETRY, Step.FAILED_DELIVERY, Step.DELIVERED)
    figures = pipeline(Scope((), (rule.destination_id,), None, steps), window)
    delivered, failed = figures.step(Step.DELIVERED).count, figures.step(Step.FAILED_DELIVERY).count
    rate = delivery_rate(delivered, failed)
    text = _rate_text(rate, delivered, failed, figures.step(Step.PENDING_RETRY).count)
    volume = delivered + failed
    if rate is None:
        return Measurement(rate, volume, window, False, False, True, text, note=NO_DELIVERIES)
    if volume < rule.min_volume:
        text += f"; under the minimum volume of {rule.min_volume:,}, not judged"
        return Measurement(rate, volume, window, False, False, True, text, note=UNDER_MINIMUM)
    healthy_from = min(rule.threshold + HYSTERESIS_POINTS, 100.0)
    return Measurement(rate, volume, window, True, rate < rule.threshold, rate >= healthy_from, text)


def received(source: Source, window: windows.Window) -> int:
    return pipeline(source_scope(source), window).received


def usual_volume(source: Source, window: windows.Window) -> tuple[float | None, int]:
    """Mean received over the same minutes of the previous days since the source existed, and the number
    of days it averages (0: no history yet)."""
    created = windows.minute_floor(source.created_at)
    counts = []
    for days in range(1, VOLUME_HISTORY_DAYS + 1):
        shift = dt.timedelta(days=days)
        earlier = windows.Window(window.start - shift, window.end - shift, windows.CUSTOM)
        if earlier.start < created:
            break
        counts.append(received(source, earlier))
    if not counts:
        return None, 0
    return sum(counts) / len(counts), len(counts)


def measure_source_volume(rule: AlertRule, now: dt.datetime) -> Measurement:
    end = windows.window_end(now, dt.timedelta(0))
    window = windows.Window(end - VOLUME_WINDOW, end, windows.CUSTOM)
    current = received(rule.source, window)
    usual, days = usual_volume(rule.source, window)
    text = f"{current:,} events received in the last hour"
    if usual is None:
        text += "; no usual level yet"
        return Measurement(None, current, window, False, False, True, text, note=NO_HISTORY)
    usual_text = f"usual level {usual:,.1f} (same hour, previous {days} day{'s' if days != 1 else ''})"
    if usual == 0 or usual < rule.min_volume:
        why = "usual level is zero" if usual == 0 else f"under the minimum volume of {rule.min_volume:,}"
        text = f"{text}, {usual_text}; {why}, not judged"
        note = NO_USUAL_VOLUME if usual == 0 else UNDER_MINIMUM
        return Measurement(None, current, window, False, False, True, text, note=note)
    change = (current - usual) * 100 / usual
    direction = "above" if change >= 0 else "below"
    text = f"{text}, {abs(change):.1f}% {direction} its {usual_text}"
    breached = abs(change) > rule.threshold
    recovered = abs(change) <= max(rule.threshold - HYSTERESIS_POINTS, 0.0)
    return Measurement(change, current, window, True, breached, recovered, text, baseline=usual)


def measure(rule: AlertRule, now: dt.datetime) -> Measurement:
    if rule.kind == AlertRule.Kind.DELIVERY_RATE:
        return measure_delivery_rate(rule, now)
    return measure_source_volume(rule, now)


# ---------------------------------------------------------------------------------------------------
# The state machine


def due_rule_ids(now: dt.datetime) -> list[int]:
    """Rules the dispatcher should evaluate now (muted rules too: they keep their incidents current)."""
    not_recent = Q(last_evaluated_at__isnull=True) | Q(last_evaluated_at__lte=now - EVALUATE_EVERY)
    return list(AlertRule.objects.filter(not_recent).order_by("id").values_list("id", flat=True))


def _deliveries_for(rule: AlertRule, event: IncidentEvent) -> list[ChannelDelivery]:
    if rule.muted:
        return []
    return [
        ChannelDelivery.objects.create(event=event, channel=channel, target=notify.target_of(rule, channel))
        for channel in Channel.values
        if channel in rule.channels
    ]


def _note(event: str, rule: AlertRule) -> str:
    return event + (" Notifications are muted for this rule." if rule.muted else "")


def _open(rule: AlertRule, m: Measurement, now: dt.datetime) -> IncidentEvent:
    incident = Incident.objects.create(
        rule=rule,
        workspace_id=rule.workspace_id,
        kind=rule.kind,
        destination_id=rule.destination_id,
        source_id=rule.source_id,
        summary=rule.description,
        threshold=rule.threshold,
        opened_at=now,
        opened_value=m.value,
        worst_value=m.value,
        window_start=m.window.start,
        window_end=m.window.end,
    )
    rule.state, rule.recovered_checks = AlertRule.State.FIRING, 0
    message = _note(f"Breached: {m.text}; {rule.threshold_text}.", rule)
    return IncidentEvent.objects.create(
        incident=incident,
        kind=IncidentEvent.Kind.OPENED,
        at=now,
        value=m.value,
        volume=m.volume,
        message=message,
    )


def _worse(rule: AlertRule, value: float | None, worst: float | None) -> float | None:
    if value is None or worst is None:
        return worst if value is None else value
    if rule.kind == AlertRule.Kind.DELIVERY_RATE:
        return min(value, worst)
    return value if abs(value) > abs(worst) else worst


def _while_open(
    rule: AlertRule, incident: Incident, m: Measurement, now: dt.datetime
) -> IncidentEvent | None:
    def timeline(kind: str, message: str) -> IncidentEvent:
        return IncidentEvent.objects.create(
            incident=incident, kind=kind, at=now, value=m.value, volume=m.volume, message=message
        )

    if m.breached:
        incident.worst_value = _worse(rule, m.value, incident.worst_value)
        incident.save(update_fields=["worst_value"])
        relapsed = rule.recovered_checks > 0
        rule.recovered_checks = 0
        return timeline(IncidentEvent.Kind.RELAPSED, f"Breached again: {m.text}.") if relapsed else None
    if not m.recovered:
        rule.recovered_checks = 0  # inside the hysteresis margin: neither breached nor recovered
        return None
    rule.recovered_checks += 1
    if rule.recovered_checks < RECOVERY_CHECKS:
        return timeline(IncidentEvent.Kind.RECOVERING, f"Recovering: {m.text}.")
    incident.status, incident.resolved_at, incident.resolved_value = Incident.Status.RESOLVED, now, m.value
    incident.save(update_fields=["status", "resolved_at", "resolved_value"])
    rule.state, rule.recovered_checks = AlertRule.State.OK, 0
    message = _note(f"Resolved: {m.text}; {rule.threshold_text}.", rule)
    return timeline(IncidentEvent.Kind.RESOLVED, message)


def evaluate_rule(rule_id: int, now: dt.datetime | None = None, *, force: bool = True) -> Evaluation:
    """Measure one rule and move its incident on. `force=False` (the dispatcher's task) skips a rule
    evaluated less than EVALUATE_EVERY ago; a rule locked by another evaluation is skipped either way."""
    now = now or timezone.now()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("destination", "source", "workspace")
            .filter(id=rule_id)
            .first()
        )
        if rule is None:
            return Evaluation(rule_id, None)
        if not force and rule.last_evaluated_at and rule.last_evaluated_at > now - EVALUATE_EVERY:
            return Evaluation(rule_id, None)
        m = measure(rule, now)
        metrics.count_alert_evaluation(rule.kind, m.breached)
        incident = rule.incidents.filter(status=Incident.Status.OPEN).first()
        if incident is None:
            event = _open(rule, m, now) if m.breached else None
        else:
            event = _while_open(rule, incident, m, now)
        notify_kinds = (IncidentEvent.Kind.OPENED, IncidentEvent.Kind.RESOLVED)
        deliveries = _deliveries_for(rule, event) if event and event.kind in notify_kinds else []
        rule.last_evaluated_at, rule.last_value, rule.last_volume = now, m.value, m.volume
        rule.last_text, rule.last_note = m.text, m.note
        rule.save(
            update_fields=[
                "state", "recovered_checks", "last_evaluated_at", "last_value", "last_volume", "last_text",
                "last_note",
            ]
        )  # fmt: skip
    return Evaluation(rule_id, m, event, tuple(d.id for d in deliveries))


@transaction.atomic
def delete_rule(rule: AlertRule) -> None:
    """Delete a rule; its open incident is resolved and every incident stays on record."""
    close_for_deleted_rule(rule)
    rule.delete()


def close_for_deleted_rule(rule: AlertRule, now: dt.datetime | None = None) -> None:
    """Deleting a rule resolves its open incident (the record stays, without the rule)."""
    now = now or timezone.now()
    for incident in rule.incidents.filter(status=Incident.Status.OPEN):
        incident.status, incident.resolved_at = Incident.Status.RESOLVED, now
        incident.save(update_fields=["status", "resolved_at"])
        IncidentEvent.objects.create(
            incident=incident,
            kind=IncidentEvent.Kind.RESOLVED,
            at=now,
            message="Resolved: the rule was deleted.",
        )
