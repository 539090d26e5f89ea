"""Delivery-rate alert rules over recorded rollups: when an incident opens, why it does not flap, when
it resolves, and what each channel receives (email through Django's locmem backend, Slack through a
local HTTP server)."""

import datetime as dt

from django.utils import timezone

from overview import alerts, notify
from overview.models import AlertRule, ChannelDelivery, Incident, IncidentEvent, Notification
from tests.overview.shop import rate_rule, record_deliveries, timeline


def test_a_delivery_rate_incident_opens_at_once_and_resolves_after_two_recovered_checks(shop):
    rule = rate_rule(shop, threshold=90, channels=["in_app", "email"])
    now = timezone.now()
    earlier = now - dt.timedelta(hours=3)
    minute = dt.timedelta(minutes=1)

    record_deliveries(shop, earlier, delivered=100)
    assert alerts.evaluate_rule(rule.id, now).event is None  # 100.0%: nothing to say

    record_deliveries(shop, earlier, failed=30)
    opened = alerts.evaluate_rule(rule.id, now + minute)  # 100 of 130 = 76.9%
    assert opened.event.kind == IncidentEvent.Kind.OPENED and len(opened.delivery_ids) == 2
    incident = Incident.objects.get()
    assert (incident.status, round(incident.opened_value, 1), incident.threshold) == ("open", 76.9, 90)
    assert opened.event.message == (
        "Breached: 76.9% delivery success rate (100 delivered, 30 failed, 0 pending retry)"
        " in the last 24 hours; alert below 90%."
    )
    assert alerts.evaluate_rule(rule.id, now + 2 * minute).event is None  # still breached: no second incident

    record_deliveries(shop, earlier, delivered=200)  # 300 of 330 = 90.9%: above 90 but inside the margin
    assert alerts.evaluate_rule(rule.id, now + 3 * minute).event is None
    record_deliveries(shop, earlier, delivered=20)  # 320 of 350 = 91.4%
    assert alerts.evaluate_rule(rule.id, now + 4 * minute).event.kind == IncidentEvent.Kind.RECOVERING
    record_deliveries(shop, earlier, failed=10)  # 320 of 360 = 88.9%: breached again, the count restarts
    assert alerts.evaluate_rule(rule.id, now + 5 * minute).event.kind == IncidentEvent.Kind.RELAPSED
    record_deliveries(shop, earlier, delivered=100)  # 420 of 460 = 91.3%
    assert alerts.evaluate_rule(rule.id, now + 6 * minute).event.kind == IncidentEvent.Kind.RECOVERING
    resolved = alerts.evaluate_rule(rule.id, now + 7 * minute)
    assert resolved.event.kind == IncidentEvent.Kind.RESOLVED and len(resolved.delivery_ids) == 2

    incident.refresh_from_db()
    rule.refresh_from_db()
    assert Incident.objects.count() == 1
    assert incident.status == "resolved" and incident.resolved_at == now + 7 * minute
    assert round(incident.worst_value, 1) == 76.9 and round(incident.resolved_value, 1) == 91.3
    assert timeline(incident) == ["opened", "recovering", "relapsed", "recovering", "resolved"]
    assert (rule.state, rule.recovered_checks, rule.last_volume) == ("ok", 0, 460)
    assert ChannelDelivery.objects.filter(status="pending").count() == 4


def test_messages_name_the_destination_the_figure_the_threshold_and_link_to_the_moment(
    shop, httpserver, mailoutbox
):
    httpserver.expect_request("/services/T1/B2/secret", method="POST").respond_with_data("ok")
    rule = rate_rule(
        shop,
        threshold=95,
        channels=["in_app", "email", "slack"],
        email_recipients=["oncall@acme.test"],
        slack_webhook_url=httpserver.url_for("/services/T1/B2/secret"),
    )
    now = timezone.now().replace(microsecond=0)
    record_deliveries(shop, now - dt.timedelta(hours=1), delivered=80, failed=20)

    evaluation = alerts.evaluate_rule(rule.id, now)
    results = [notify.send(delivery_id) for delivery_id in evaluation.delivery_ids]

    assert [r.status for r in results] == ["sent", "sent", "sent"]
    incident = Incident.objects.get()
    start = incident.window_start.strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
    end = incident.window_end.strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
    link = (
        f"https://overview.acme.test/w/{shop.workspace.slug}/destinations/{shop.warehouse.id}/"
        f"?start={start}&end={end}"
    )
    assert incident.window_end - incident.window_start == dt.timedelta(hours=24)
    subject = "Alert: Warehouse delivery success rate 80.0% (alert below 95%)"
    body = "\n".join(
        [
            "Destination 'Warehouse' in workspace Acme.",
            "Breached: 80.0% delivery success rate (80 delivered, 20 failed, 0 pending retry)"
            " in the last 24 hours; alert below 95%.",
            "Rule: Delivery success rate of Warehouse below 95% over 24 hours.",
            f"Opened at {now.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.",
            f"The overview at the moment it broke: {link}",
        ]
    )

    [email] = mailoutbox
    assert (email.subject, email.body, email.to) == (subject, body, ["oncall@acme.test"])

    [(request, _)] = httpserver.log
    assert request.json == {"text": f"*{subject}*\n{body}\n<{link}|Open the overview>"}

    notifications = Notification.objects.order_by("user__username")
    assert [(n.user.username, n.title, n.link, n.read_at) for n in notifications] == [
        ("olivia", subject, link, None),
        ("victor", subject, link, None),
    ]
    # In-app, the list shows the time in the reader's zone and links the incident: no UTC time in the body.
    assert {n.body for n in notifications} == {"\n".join(body.splitlines()[:3])}
    deliveries = ChannelDelivery.objects.order_by("id")
    assert [(d.channel, d.target, d.status, d.attempts) for d in deliveries] == [
        ("in_app", "members of Acme", "sent", 1),
        ("email", "oncall@acme.test", "sent", 1),
        ("slack", "webhook at localhost", "sent", 1),
    ]
    # A redelivered task finds the row already sent and sends nothing twice.
    assert notify.send(deliveries[1].id).status == ""
    assert len(mailoutbox) == 1


def test_a_failing_webhook_is_recorded_retried_and_given_up_on_visibly(shop, httpserver):
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    rule = rate_rule(shop, threshold=95, channels=["slack"], slack_webhook_url=httpserver.url_for("/hook"))
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), delivered=1, failed=1)
    [delivery_id] = alerts.evaluate_rule(rule.id).delivery_ids

    first = notify.send(delivery_id, final=False)
    assert (first.status, first.retry) == ("retrying", True)
    assert first.error == "The webhook answered 503: busy"
    delivery = ChannelDelivery.objects.get(id=delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "retrying",
        1,
        "The webhook answered 503: busy",
    )
    assert [e["error"] for e in delivery.errors] == ["The webhook answered 503: busy"]

    second = notify.send(delivery_id, final=False)
    delivery.refresh_from_db()
    assert (second.status, delivery.status, delivery.attempts, len(delivery.errors)) == ("sent", "sent", 2, 1)

    # A webhook that answers 404 (revoked) fails at once: retrying cannot help.
    httpserver.clear()
    httpserver.expect_request("/revoked", method="POST").respond_with_data("no_service", status=404)
    rule.slack_webhook_url = httpserver.url_for("/revoked")
    rule.save()
    IncidentEvent.objects.filter(incident__rule=rule).delete()
    Incident.objects.filter(rule=rule).delete()
    AlertRule.objects.filter(id=rule.id).update(state="ok")
    [revoked_id] = alerts.evaluate_rule(rule.id).delivery_ids
    result = notify.send(revoked_id, final=False)
    assert (result.status, result.retry, result.error) == (
        "failed",
        False,
        "The webhook answered 404: no_service",
    )


def test_unreachable_webhook_and_missing_recipients_are_failures_not_silence(shop, settings):
    rule = rate_rule(
        shop, threshold=95, channels=["email", "slack"], slack_webhook_url="http://127.0.0.1:9/hook"
    )
    shop.owner.email = shop.viewer.email = ""
    shop.owner.save()
    shop.viewer.save()
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), failed=3)
    email_id, slack_id = alerts.evaluate_rule(rule.id).delivery_ids

    email = notify.send(email_id, final=False)
    assert (email.status, email.error) == (
        "failed",
        "No recipients: add addresses to the rule or to the members' accounts.",
    )
    slack = notify.send(slack_id, final=True)
    assert slack.status == "failed" and slack.error.startswith(
        "The webhook could not be reached (ConnectError)"
    )

    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    ChannelDelivery.objects.filter(id=slack_id).update(status="retrying")
    refused = notify.send(slack_id, final=False)
    assert refused.status == "failed"
    assert refused.error == (
        "The webhook URL is refused: 127.0.0.1 resolves to 127.0.0.1, a loopback, private, link-local"
        " or reserved address."
    )


def test_below_the_minimum_volume_a_destination_is_not_judged(shop):
    rule = rate_rule(shop, threshold=99, min_volume=50, channels=["in_app"])
    now = timezone.now()
    record_deliveries(shop, now - dt.timedelta(hours=2), delivered=10, failed=10)
    evaluation = alerts.evaluate_rule(rule.id, now)
    assert evaluation.event is None and not Incident.objects.exists()
    assert evaluation.measurement.text == (
        "50.0% delivery success rate (10 delivered, 10 failed, 0 pending retry)"
        " in the last 24 hours;"
        " under the minimum volume of 50, not judged"
    )
    record_deliveries(shop, now - dt.timedelta(hours=2), failed=30)
    assert alerts.evaluate_rule(rule.id, now).event.kind == "opened"  # 10 of 50


def test_failures_older_than_24_hours_no_longer_count(shop):
    rule = rate_rule(shop, threshold=90)
    now = timezone.now()
    record_deliveries(shop, now - dt.timedelta(hours=25), failed=500)
    record_deliveries(shop, now - dt.timedelta(hours=23), delivered=10)
    evaluation = alerts.evaluate_rule(rule.id, now)
    assert evaluation.measurement.value == 100.0 and evaluation.event is None


def test_a_muted_rule_keeps_its_incident_but_notifies_nobody(shop):
    rule = rate_rule(shop, threshold=90, channels=["in_app", "email"], muted=True)
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), failed=5)
    evaluation = alerts.evaluate_rule(rule.id)
    assert evaluation.delivery_ids == ()
    assert evaluation.event.message == (
        "Breached: 0.0% delivery success rate (0 delivered, 5 failed, 0 pending retry)"
        " in the last 24 hours; alert below 90%."
        " Notifications are muted for this rule."
    )
    assert Incident.objects.get().status == "open" and not ChannelDelivery.objects.exists()


def test_deleting_a_rule_resolves_its_open_incident_and_keeps_the_record(shop):
    rule = rate_rule(shop, threshold=90)
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), failed=5)
    alerts.evaluate_rule(rule.id)
    alerts.close_for_deleted_rule(rule)
    rule.delete()
    incident = Incident.objects.get()
    assert (incident.status, incident.rule, incident.destination) == ("resolved", None, shop.warehouse)
    assert timeline(incident) == ["opened", "resolved"]
    assert incident.events.last().message == "Resolved: the rule was deleted."


def test_the_dispatcher_evaluates_each_rule_at_most_once_a_minute(shop):
    rule = rate_rule(shop)
    now = timezone.now()
    assert alerts.due_rule_ids(now) == [rule.id]
    assert alerts.evaluate_rule(rule.id, now, force=False).measurement is not None
    assert alerts.due_rule_ids(now + dt.timedelta(seconds=30)) == []
    assert alerts.evaluate_rule(rule.id, now + dt.timedelta(seconds=30), force=False).measurement is None
    assert alerts.due_rule_ids(now + dt.timedelta(seconds=50)) == [rule.id]
