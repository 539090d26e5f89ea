"""Source-volume alert rules: the last hour against the same hour of the previous days since the
source existed, and messages that link to the source's overview."""

import datetime as dt

from django.utils import timezone

from delivery.models import Source
from overview import alerts, notify
from overview.models import AlertRule, Incident
from tests.overview.shop import Shop, record_received, timeline


def volume_rule(shop: Shop, threshold: float = 50, **fields) -> AlertRule:
    return AlertRule.objects.create(
        workspace=shop.workspace,
        kind=AlertRule.Kind.SOURCE_VOLUME,
        source=shop.web,
        threshold=threshold,
        **fields,
    )


def test_source_volume_against_the_same_hour_of_previous_days(shop):
    now = timezone.now().replace(second=30, microsecond=0)
    Source.objects.filter(id=shop.web.id).update(created_at=now - dt.timedelta(days=10))
    for days, n in enumerate([90, 110, 100, 95, 105, 100, 100], start=1):  # usual level: 100
        record_received(shop, now - dt.timedelta(days=days, minutes=30), n)
    record_received(shop, now - dt.timedelta(days=1, hours=2), 5000)  # another hour: not the usual level
    rule = volume_rule(shop, threshold=50, channels=["in_app"])

    record_received(shop, now - dt.timedelta(minutes=20), 30)
    opened = alerts.evaluate_rule(rule.id, now)
    assert opened.event.kind == "opened"
    assert opened.measurement.text == (
        "30 events received in the last hour, 70.0% below its usual level 100.0 (same hour, previous 7 days)"
    )
    assert opened.event.message.endswith("; alert when more than 50% above or below the usual level.")

    record_received(shop, now - dt.timedelta(minutes=10), 20)  # 50: not more than 50% off, inside the margin
    assert alerts.evaluate_rule(rule.id, now).event is None
    record_received(shop, now - dt.timedelta(minutes=5), 10)  # 60: 40% below
    assert alerts.evaluate_rule(rule.id, now).event.kind == "recovering"
    resolved = alerts.evaluate_rule(rule.id, now + dt.timedelta(seconds=20))
    assert resolved.event.kind == "resolved"
    assert timeline(Incident.objects.get()) == ["opened", "recovering", "resolved"]

    record_received(shop, now - dt.timedelta(minutes=1), 100)  # 160: 60% above
    surge = alerts.evaluate_rule(rule.id, now + dt.timedelta(seconds=25))
    assert surge.event.kind == "opened" and round(surge.measurement.value) == 60
    assert Incident.objects.filter(status="open").count() == 1 and Incident.objects.count() == 2


def test_a_new_source_has_no_usual_level_yet(shop):
    rule = volume_rule(shop, threshold=10)
    record_received(shop, timezone.now(), 1000)
    evaluation = alerts.evaluate_rule(rule.id)
    assert evaluation.event is None and not evaluation.measurement.judged
    assert evaluation.measurement.text == "1,000 events received in the last hour; no usual level yet"


def test_only_days_since_the_source_existed_make_its_usual_level(shop):
    now = timezone.now().replace(second=30, microsecond=0)
    Source.objects.filter(id=shop.web.id).update(created_at=now - dt.timedelta(days=2, hours=3))
    record_received(shop, now - dt.timedelta(days=1, minutes=30), 40)
    record_received(shop, now - dt.timedelta(days=2, minutes=30), 60)
    rule = volume_rule(shop, threshold=20, min_volume=60)
    evaluation = alerts.evaluate_rule(rule.id, now)
    assert evaluation.measurement.text == (
        "0 events received in the last hour, usual level 50.0 (same hour, previous 2 days);"
        " under the minimum volume of 60, not judged"
    )
    AlertRule.objects.filter(id=rule.id).update(min_volume=0)
    assert alerts.evaluate_rule(rule.id, now).event.message.startswith(
        "Breached: 0 events received in the last hour, 100.0% below its usual level 50.0"
    )


def test_messages_about_a_source_link_to_its_overview(shop, mailoutbox):
    now = timezone.now().replace(second=30, microsecond=0)
    Source.objects.filter(id=shop.web.id).update(created_at=now - dt.timedelta(days=3))
    record_received(shop, now - dt.timedelta(days=1, minutes=30), 100)
    rule = volume_rule(shop, threshold=50, channels=["email"])
    [delivery_id] = alerts.evaluate_rule(rule.id, now).delivery_ids
    assert notify.send(delivery_id).status == "sent"
    [email] = mailoutbox
    assert email.subject == (
        "Alert: Web app volume 100.0% below its usual level"
        " (alert when more than 50% above or below the usual level)"
    )
    assert email.to == ["olivia@example.com", "victor@example.com"]
    assert f"https://overview.acme.test/w/{shop.workspace.slug}/sources/{shop.web.id}/?start=" in email.body
    assert email.body.startswith("Source 'Web app' in workspace Acme.\n")
