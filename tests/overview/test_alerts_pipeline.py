"""End to end: events sent over HTTP go through the real worker to a sandbox destination that turns from
healthy to rejecting and back; evaluating the rule opens one incident and resolves it once, and the
operators hear about both by email (locmem) and on a Slack-compatible webhook (a local HTTP server)."""

import datetime as dt
import itertools

import httpx
import pytest
from django.db.models import Sum
from django.utils import timezone

from delivery.models import Rollup
from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import alerts, notify
from overview.models import AlertRule, ChannelDelivery, Incident, Notification
from overview.tasks import send_notification
from tests.conftest import wait_until
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

pytestmark = pytest.mark.e2e
_ids = itertools.count(1)


def orders(n: int) -> list[dict]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": f"alert-e2e-{next(_ids)}",
            "userId": "user-1",
            "properties": {"total": 10},
        }
        for _ in range(n)
    ]


def finished(destination_id: int, step: Step) -> int:
    rows = Rollup.objects.filter(destination_id=destination_id, mapping_id__isnull=False, step=step)
    return rows.aggregate(n=Sum("count"))["n"] or 0


def test_a_destination_that_starts_failing_opens_one_incident_and_recovering_resolves_it(
    celery_worker, live_server, sandbox, httpserver, mailoutbox, settings
):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.SITE_URL = "https://overview.acme.test"
    httpserver.expect_request("/services/T1/B2/secret", method="POST").respond_with_data("ok")
    owner = make_user("olivia")
    workspace = make_workspace("Acme", owner=owner)
    web = make_source(workspace, "Web app")
    warehouse = make_destination(
        workspace, f"{sandbox.url}/warehouse/webhook", name="Warehouse", sources=[web], batch_size=20
    )
    make_mapping(warehouse, "Everything")
    rule = AlertRule(
        workspace=workspace,
        kind=AlertRule.Kind.DELIVERY_RATE,
        destination=warehouse,
        threshold=80,
        channels=["in_app", "email", "slack"],
        email_recipients=["oncall@acme.test"],
    )
    rule.slack_webhook_url = httpserver.url_for("/services/T1/B2/secret")
    rule.save()

    def send(n: int) -> None:
        answer = httpx.post(
            f"{live_server.url}/v1/batch", json={"batch": orders(n)}, auth=(web.write_key, "")
        )
        assert answer.status_code == 200, answer.text

    def settle(delivered: int, failed: int) -> None:
        wait_until(
            lambda: (
                (finished(warehouse.id, Step.DELIVERED), finished(warehouse.id, Step.FAILED_DELIVERY))
                == (delivered, failed)
            ),
            timeout=45,
            what=f"{delivered} delivered and {failed} failed",
        )

    def evaluate_and_notify() -> alerts.Evaluation:
        evaluation = alerts.evaluate_rule(rule.id)
        for delivery_id in evaluation.delivery_ids:
            assert notify.send(delivery_id).status == "sent"
        return evaluation

    # Healthy: 20 of 20 delivered.
    send(20)
    settle(20, 0)
    assert evaluate_and_notify().event is None

    # The destination starts rejecting every batch (400): 20 more fail, 20 of 40 = 50 %.
    sandbox.configure("warehouse", "bad_request")
    send(20)
    settle(20, 20)
    opened = evaluate_and_notify()
    assert opened.event.kind == "opened" and opened.measurement.value == 50.0
    assert evaluate_and_notify().event is None  # still broken: still the same incident

    # Healthy again: 40 of 60 = 66.7 % is still breached; 100 of 120 = 83.3 % is past the 1-point margin.
    sandbox.configure("warehouse", "healthy")
    send(20)
    settle(40, 20)
    assert evaluate_and_notify().event is None
    send(60)
    settle(100, 20)
    assert evaluate_and_notify().event.kind == "recovering"
    resolved = evaluate_and_notify()
    assert resolved.event.kind == "resolved" and round(resolved.measurement.value, 1) == 83.3

    incident = Incident.objects.get()
    assert (incident.status, incident.opened_value, round(incident.resolved_value, 1)) == (
        "resolved",
        50.0,
        83.3,
    )
    assert list(incident.events.values_list("kind", flat=True)) == ["opened", "recovering", "resolved"]

    assert [m.subject for m in mailoutbox] == [
        "Alert: Warehouse delivery success rate 50.0% (alert below 80%)",
        "Resolved: Warehouse delivery success rate 83.3% (alert below 80%)",
    ]
    assert mailoutbox[0].to == ["oncall@acme.test"]
    assert (
        "Breached: 50.0% delivery success rate (20 delivered, 20 failed, 0 pending retry)"
        " in the last 24 hours; alert below 80%." in (mailoutbox[0].body)
    )
    assert (
        "Resolved: 83.3% delivery success rate (100 delivered, 20 failed, 0 pending retry)"
        " in the last 24 hours; alert below 80%." in (mailoutbox[1].body)
    )
    link = f"https://overview.acme.test/w/{workspace.slug}/destinations/{warehouse.id}/?start="
    assert all(link in m.body for m in mailoutbox)

    posted = [request.json["text"] for request, _ in httpserver.log]
    assert len(posted) == 2
    assert posted[0].startswith("*Alert: Warehouse delivery success rate 50.0% (alert below 80%)*\n")
    assert posted[1].startswith("*Resolved: Warehouse delivery success rate 83.3% (alert below 80%)*\n")
    assert all(link in text and "|Open the overview>" in text for text in posted)

    assert list(Notification.objects.values_list("title", flat=True).order_by("id")) == [
        "Alert: Warehouse delivery success rate 50.0% (alert below 80%)",
        "Resolved: Warehouse delivery success rate 83.3% (alert below 80%)",
    ]
    assert ChannelDelivery.objects.filter(status="sent").count() == 6


def test_a_failed_notification_is_retried_by_the_worker_and_its_failure_kept(celery_worker, httpserver):
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("overloaded", status=503)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    owner = make_user("olivia")
    workspace = make_workspace("Acme", owner=owner)
    web = make_source(workspace, "Web app")
    warehouse = make_destination(workspace, "http://127.0.0.1:9/hook", name="Warehouse", sources=[web])
    mapping = make_mapping(warehouse, "Everything")
    tally = Tally()
    for mapping_id in (mapping.id, None):  # the mapping's pairs and the events as a whole
        where = Where(workspace.id, web.id, warehouse.id, mapping_id, "track", "Order Completed")
        tally.add(timezone.now() - dt.timedelta(hours=1), where, Step.FAILED_DELIVERY, "400", 5)
    tally.write()
    rule = AlertRule(
        workspace=workspace, kind="delivery_rate", destination=warehouse, threshold=90, channels=["slack"]
    )
    rule.slack_webhook_url = httpserver.url_for("/hook")
    rule.save()
    [delivery_id] = alerts.evaluate_rule(rule.id).delivery_ids

    send_notification.delay(delivery_id)

    delivery = wait_until(
        lambda: ChannelDelivery.objects.filter(id=delivery_id, status="sent").first(),
        timeout=45,
        what="the worker to retry the webhook after its 503",
    )
    assert (delivery.attempts, delivery.last_error) == (2, "The webhook answered 503: overloaded")
    assert [e["error"] for e in delivery.errors] == ["The webhook answered 503: overloaded"]
    assert len(httpserver.log) == 2
