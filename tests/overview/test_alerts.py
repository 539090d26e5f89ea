"""Alert rules over recorded rollups: when an incident opens, why it does not flap, when it resolves, and
what each channel receives (email through Django's locmem backend, Slack through a local HTTP server)."""

import datetime as dt
from dataclasses import dataclass

import pytest
from django.utils import timezone

from delivery.models import Destination, Mapping, Source, Workspace
from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import alerts, notify
from overview.models import AlertRule, ChannelDelivery, Incident, IncidentEvent, Notification
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace


@dataclass
class Shop:
    workspace: Workspace
    web: Source
    warehouse: Destination
    everything: Mapping
    owner: object
    viewer: object


@pytest.fixture
def shop(db, settings) -> Shop:
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.SITE_URL = "https://overview.acme.test"
    owner, viewer = make_user("olivia"), make_user("victor")
    workspace = make_workspace("Acme", owner=owner, viewer=viewer)
    web = make_source(workspace, "Web app")
    warehouse = make_destination(workspace, "https://hooks.example.com/in", name="Warehouse", sources=[web])
    return Shop(workspace, web, warehouse, make_mapping(warehouse, "Everything"), owner, viewer)


def record_deliveries(shop: Shop, at: dt.datetime, delivered: int = 0, failed: int = 0) -> None:
    where = Where(shop.workspace.id, shop.web.id, shop.warehouse.id, shop.everything.id, "track", "Order")
    tally = Tally()
    if delivered:
        tally.add(at, where, Step.DELIVERED, "", delivered)
    if failed:
        tally.add(at, where, Step.FAILED_DELIVERY, "400", failed)
    tally.write()


def record_received(shop: Shop, at: dt.datetime, n: int) -> None:
    tally = Tally()
    tally.add(
        at,
        Where(shop.workspace.id, shop.web.id, event_type="track", event_name="Order"),
        Step.RECEIVED,
        "",
        n,
    )
    tally.write()


def rate_rule(shop: Shop, **fields) -> AlertRule:
    rule = AlertRule(
        workspace=shop.workspace,
        kind=AlertRule.Kind.DELIVERY_RATE,
        destination=shop.warehouse,
        threshold=fields.pop("threshold", 90),
        **fields,
    )
    rule.slack_webhook_url = fields.get("slack_webhook_url", "")
    rule.save()
    return rule


def timeline(incident: Incident) -> list[str]:
    return list(incident.events.values_list("kind", flat=True))


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
        "Breached: 76.9% successful (100 delivered, 30 failed) in the last 24 hours; alert below 90%."
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
    subject = "Alert: Warehouse successful delivery rate 80.0% (alert below 95%)"
    body = "\n".join(
        [
            "Destination 'Warehouse' in workspace Acme.",
            "Breached: 80.0% successful (80 delivered, 20 failed) in the last 24 hours; alert below 95%.",
            "Rule: Successful delivery rate of Warehouse below 95% over 24 hours.",
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
        "50.0% successful (10 delivered, 10 failed) in the last 24 hours;"
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
        "Breached: 0.0% successful (0 delivered, 5 failed) in the last 24 hours; alert below 90%."
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


# ---------------------------------------------------------------------------------------------------
# Source volume


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


def test_incidents_in_the_api(shop):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    rule = rate_rule(shop, threshold=90, channels=["in_app"])
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), delivered=1, failed=3)
    [delivery_id] = alerts.evaluate_rule(rule.id).delivery_ids
    notify.send(delivery_id)
    incident = Incident.objects.get()

    def api(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    page = api(shop.viewer).get("/api/v1/incidents/?status=open").json()
    assert page["count"] == 1
    [row] = page["results"]
    assert (row["id"], row["kind"], row["rule"], row["destination"], row["status"]) == (
        incident.id, "delivery_rate", rule.id, shop.warehouse.id, "open",
    )  # fmt: skip
    assert row["opened_value"] == 25.0 and row["overview_url"].startswith("https://overview.acme.test/w/")
    [opened] = row["timeline"]
    assert opened["kind"] == "opened"
    assert opened["deliveries"] == [
        {
            "channel": "in_app",
            "target": "members of Acme",
            "status": "sent",
            "attempts": 1,
            "last_error": "",
            "errors": [],
            "sent_at": opened["deliveries"][0]["sent_at"],
        }
    ]
    assert api(shop.viewer).get("/api/v1/incidents/?status=resolved").json()["count"] == 0
    assert api(shop.viewer).get(f"/api/v1/incidents/?destination={shop.warehouse.id}").json()["count"] == 1
    bad = api(shop.viewer).get("/api/v1/incidents/?status=closed&rule=abc")
    assert bad.status_code == 400
    assert bad.json() == {
        "status": ['"closed" is not a valid choice.'],
        "rule": ["A valid integer is required."],
    }

    outsider = make_user("oscar")
    make_workspace("Globex", owner=outsider)
    assert api(outsider).get("/api/v1/incidents/").json()["count"] == 0
    assert api(outsider).get(f"/api/v1/incidents/{incident.id}/").status_code == 404
    assert api(shop.owner).post("/api/v1/incidents/", {}, format="json").status_code == 405

    # Deleting the rule through the API resolves the incident and keeps it.
    assert api(shop.owner).delete(f"/api/v1/alert-rules/{rule.id}/").status_code == 204
    detail = api(shop.owner).get(f"/api/v1/incidents/{incident.id}/").json()
    assert (detail["status"], detail["rule"]) == ("resolved", None)
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "resolved"]
