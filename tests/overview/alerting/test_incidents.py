"""What alerting shows an operator: an incident's timeline with every notification it sent, and the
in-app notifications counted in the header until opened."""

import datetime as dt

from django.utils import timezone

from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import alerts, notify
from overview.models import AlertRule, ChannelDelivery, Notification
from tests.factories import make_destination, make_mapping, make_source
from tests.overview.page_text import text


def test_an_incident_page_shows_the_timeline_and_every_notification(acme, client, mailoutbox):
    web = make_source(acme["workspace"], "Web app")
    hook = make_destination(acme["workspace"], "http://127.0.0.1:9/hook", name="Warehouse", sources=[web])
    mapping = make_mapping(hook)
    rule = AlertRule(workspace=acme["workspace"], kind="delivery_rate", destination=hook, threshold=90)
    rule.channels = ["in_app", "email", "slack"]
    rule.slack_webhook_url = "http://127.0.0.1:9/slack"  # nothing listens there
    rule.save()
    tally = Tally()
    for mapping_id in (mapping.id, None):  # the mapping's pairs and the events as a whole
        tally.add(
            timezone.now() - dt.timedelta(hours=1),
            Where(acme["workspace"].id, web.id, hook.id, mapping_id),
            Step.FAILED_DELIVERY,
            "400",
            4,
        )
    tally.write()
    evaluation = alerts.evaluate_rule(rule.id)
    for delivery_id in evaluation.delivery_ids:
        notify.send(delivery_id)

    client.force_login(acme["viewer"])
    incident = evaluation.event.incident
    page = text(client.get(f"/w/{acme['workspace'].slug}/incidents/{incident.id}/"))
    assert "Delivery success rate of Warehouse below 90% over 24 hours Open" in page
    assert (
        "Opened" in page
        and "Breached: 0.0% delivery success rate (0 delivered, 4 failed, 0 pending retry)"
        " in the last 24 hours; alert below 90%."
        in page
    )
    assert "Sent In-app notification to members of Acme · 1 attempt" in page
    assert "Sent Email to olivia@example.com, victor@example.com · 1 attempt" in page
    assert (
        "Failed Slack incoming webhook to webhook at 127.0.0.1 · 1 attempt ·"
        " The webhook could not be reached (ConnectError)" in page
    )
    assert len(mailoutbox) == 1

    # The viewer's in-app notification: counted in the header until opened.
    notes = client.get("/notifications/")
    assert "1 unread" in text(
        notes
    ) and "Alert: Warehouse delivery success rate 0.0% (alert below 90%)" in text(notes)
    note = Notification.objects.get(user=acme["viewer"])
    opened = client.get(f"/notifications/{note.id}/")
    assert opened["Location"] == f"/w/{acme['workspace'].slug}/incidents/{incident.id}/"
    assert "unread" not in text(client.get("/notifications/"))
    assert client.get(f"/notifications/{Notification.objects.get(user=acme['owner']).id}/").status_code == 404
    assert ChannelDelivery.objects.filter(status="failed").count() == 1
