"""Incidents through the API: the list with its filters and timeline, tenancy, and a rule deleted
through the API resolving its incident."""

import datetime as dt

from django.utils import timezone

from overview import alerts, notify
from overview.models import Incident
from tests.factories import make_user, make_workspace
from tests.overview.api.team import client_for
from tests.overview.shop import rate_rule, record_deliveries


def test_incidents_in_the_api(shop):
    rule = rate_rule(shop, threshold=90, channels=["in_app"])
    record_deliveries(shop, timezone.now() - dt.timedelta(hours=1), delivered=1, failed=3)
    [delivery_id] = alerts.evaluate_rule(rule.id).delivery_ids
    notify.send(delivery_id)
    incident = Incident.objects.get()

    page = client_for(shop.viewer).get("/api/v1/incidents/?status=open").json()
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
    assert client_for(shop.viewer).get("/api/v1/incidents/?status=resolved").json()["count"] == 0
    assert (
        client_for(shop.viewer).get(f"/api/v1/incidents/?destination={shop.warehouse.id}").json()["count"]
        == 1
    )
    bad = client_for(shop.viewer).get("/api/v1/incidents/?status=closed&rule=abc")
    assert bad.status_code == 400
    assert bad.json() == {
        "status": ['"closed" is not a valid choice.'],
        "rule": ["A valid integer is required."],
    }

    outsider = make_user("oscar")
    make_workspace("Globex", owner=outsider)
    assert client_for(outsider).get("/api/v1/incidents/").json()["count"] == 0
    assert client_for(outsider).get(f"/api/v1/incidents/{incident.id}/").status_code == 404
    assert client_for(shop.owner).post("/api/v1/incidents/", {}, format="json").status_code == 405

    # Deleting the rule through the API resolves the incident and keeps it.
    assert client_for(shop.owner).delete(f"/api/v1/alert-rules/{rule.id}/").status_code == 204
    detail = client_for(shop.owner).get(f"/api/v1/incidents/{incident.id}/").json()
    assert (detail["status"], detail["rule"]) == ("resolved", None)
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "resolved"]
