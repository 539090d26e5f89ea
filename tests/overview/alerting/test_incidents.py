"""What alerting shows an operator: an incident's timeline with every notification it sent, and the
in-app notifications counted in the header until opened."""

import datetime as dt
from zoneinfo import ZoneInfo

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


def test_a_firing_rule_shows_on_the_home_row_and_the_overview_until_it_resolves(acme, client):
    web, hook, mapping, rule, incident = firing_warehouse(acme)
    slug = acme["workspace"].slug
    client.force_login(acme["viewer"])
    client.cookies["tz"] = "Europe/Paris"

    home = client.get(f"/w/{slug}/").content.decode()
    badge = f'<a class="alert-badge" href="/w/{slug}/incidents/{incident.id}/"'
    assert home.count(badge) == 1 and "Alert firing</a>" in home
    overview = client.get(f"/w/{slug}/destinations/{hook.id}/")
    banner = text(overview)
    opened = timezone.localtime(incident.opened_at, ZoneInfo("Europe/Paris")).strftime("%b %-d, %H:%M")
    assert (
        "Alert firing : Delivery success rate of Warehouse below 90% over 24 hours Open since"
        f" {opened} (Europe/Paris). Last check: 0.0% delivery success rate (0 delivered, 4 failed,"
        " 0 pending retry) in the last 24 hours. Open the incident" in banner
    )
    # The source's overview has no banner: the rule watches the destination.
    assert "alert-banner" not in client.get(f"/w/{slug}/sources/{web.id}/").content.decode()

    record_outcome(acme, web, hook, mapping, Step.DELIVERED, 1000)
    for _ in range(alerts.RECOVERY_CHECKS):
        alerts.evaluate_rule(rule.id, force=True)
    assert "alert-badge" not in client.get(f"/w/{slug}/").content.decode()
    assert "alert-banner" not in client.get(f"/w/{slug}/destinations/{hook.id}/").content.decode()


def test_a_volume_rule_without_history_says_so_rather_than_ok(acme, client):
    web = make_source(acme["workspace"], "Web app")
    rule = AlertRule.objects.create(
        workspace=acme["workspace"], kind="source_volume", source=web, threshold=50
    )
    client.force_login(acme["viewer"])
    page = f"/w/{acme['workspace'].slug}/alerts/"
    assert "Not checked yet" in text(client.get(page))

    alerts.evaluate_rule(rule.id)

    rule.refresh_from_db()
    assert (rule.last_note, rule.state) == ("not enough history yet", "ok")
    shown = text(client.get(page))
    assert "Not enough history yet 0 events received in the last hour; no usual level yet" in shown
    assert " OK " not in shown


def test_the_incident_link_says_when_the_lookback_trims_its_end(acme, client):
    *_, incident = firing_warehouse(acme)
    client.force_login(acme["viewer"])

    page = text(client.get(notify.overview_link(incident)))

    asked = timezone.localtime(incident.window_end, dt.UTC).strftime("%b %-d, %H:%M")
    assert f"the end asked for, {asked} , is inside the last 5 minutes, which are still settling" in page
    assert "ends 5 minutes before now" not in page


def record_outcome(acme, source, destination, mapping, step, n):
    """n events an hour ago at a delivery step: the mapping's pairs and the events as a whole."""
    tally = Tally()
    for mapping_id in (mapping.id, None):
        where = Where(acme["workspace"].id, source.id, destination.id, mapping_id)
        tally.add(
            timezone.now() - dt.timedelta(hours=1), where, step, "400" if step == "failed_delivery" else "", n
        )
    tally.write()


def firing_warehouse(acme):
    """A destination whose every delivery failed, and its rule's open incident (0 % < 90 %)."""
    web = make_source(acme["workspace"], "Web app")
    hook = make_destination(acme["workspace"], "http://127.0.0.1:9/hook", name="Warehouse", sources=[web])
    mapping = make_mapping(hook)
    rule = AlertRule.objects.create(
        workspace=acme["workspace"], kind="delivery_rate", destination=hook, threshold=90
    )
    record_outcome(acme, web, hook, mapping, Step.FAILED_DELIVERY, 4)
    incident = alerts.evaluate_rule(rule.id).event.incident
    return web, hook, mapping, rule, incident
