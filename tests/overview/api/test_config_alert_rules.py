# ruff: noqa: E501 -- the tables of exact error messages read best one case a line
"""Alert rules through the API: who sets them up, what each kind watches, the exact messages a bad rule
gets back."""

from overview.models import AlertRule

# ---------------------------------------------------------------------------------------------------
# Alert rules and incidents


def test_an_owner_sets_up_a_delivery_rate_alert(team, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    api = team.api("owner")
    response = api.post(
        "/api/v1/alert-rules/",
        {
            "kind": "delivery_rate",
            "destination": team.warehouse.id,
            "threshold": 99,
            "min_volume": 100,
            "channels": ["slack", "email", "in_app"],
            "email_recipients": ["oncall@acme.test"],
            "slack_webhook_url": "http://127.0.0.1:9999/hooks/T000/B000/XXXX",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["workspace"] == team.acme.id and body["source"] is None
    assert body["channels"] == ["in_app", "email", "slack"]
    assert body["description"] == "Delivery success rate of Warehouse below 99% over 24 hours"
    assert "slack_webhook_url" not in body and body["has_slack_webhook"] is True
    assert (body["state"], body["open_incident"], body["muted"]) == ("ok", None, False)
    rule = AlertRule.objects.get(id=body["id"])
    assert rule.slack_webhook_url == "http://127.0.0.1:9999/hooks/T000/B000/XXXX"
    assert "XXXX" not in rule.slack_webhook_encrypted and rule.created_by == team.owner

    url = f"/api/v1/alert-rules/{rule.id}/"
    assert api.patch(url, {"muted": True, "threshold": 95}, format="json").json()["muted"] is True
    assert team.api("viewer").get(url).json()["threshold"] == 95
    assert team.api("viewer").patch(url, {"muted": False}, format="json").status_code == 403
    assert team.api("outsider").get(url).status_code == 404
    assert team.api("outsider").get("/api/v1/alert-rules/").json() == []
    assert [r["id"] for r in team.api("viewer").get("/api/v1/alert-rules/").json()] == [rule.id]


def test_a_source_volume_alert(team):
    response = team.api("owner").post(
        "/api/v1/alert-rules/",
        {"kind": "source_volume", "source": team.web.id, "threshold": 40, "channels": ["in_app"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["description"] == "Volume of Web app more than 40% off its usual level"


def test_alert_rule_input_is_strict(team):
    api = team.api("owner")
    rate = {"kind": "delivery_rate", "destination": team.warehouse.id, "threshold": 90}
    cases = [
        ({**rate, "destination": None}, {"destination": ["A delivery_rate rule watches one destination (and no source)."]}),
        ({**rate, "source": team.web.id}, {"destination": ["A delivery_rate rule watches one destination (and no source)."]}),
        ({"kind": "source_volume", "destination": team.warehouse.id, "threshold": 10}, {"source": ["A source_volume rule watches one source (and no destination)."]}),
        ({**rate, "threshold": 0}, {"threshold": ["A delivery rate threshold is a percentage above 0, up to 100."]}),
        ({**rate, "threshold": 101}, {"threshold": ["A delivery rate threshold is a percentage above 0, up to 100."]}),
        ({**rate, "threshold": "90"}, {"threshold": ["A valid number is required."]}),
        ({"kind": "source_volume", "source": team.web.id, "threshold": -5}, {"threshold": ["A volume threshold is a percentage change above 0, up to 10000."]}),
        ({**rate, "channels": ["pager"]}, {"channels": {"0": ['"pager" is not a valid choice.']}}),
        ({**rate, "channels": ["slack"]}, {"slack_webhook_url": ["The Slack channel needs a webhook URL."]}),
        ({**rate, "email_recipients": ["not-an-address"]}, {"email_recipients": {"0": ["Enter a valid email address."]}}),
        ({**rate, "min_volume": -1}, {"min_volume": ["Ensure this value is greater than or equal to 0."]}),
        ({**rate, "state": "firing"}, {"state": ["state is read-only."]}),
        ({**rate, "kind": "latency"}, {"kind": ['"latency" is not a valid choice.']}),
        ({**rate, "destination": team.globex_destination.id}, {"destination": [f'Invalid pk "{team.globex_destination.id}" - object does not exist.']}),
        ({"destination": team.warehouse.id, "threshold": 90}, {"kind": ["This field is required."]}),
    ]  # fmt: skip
    for body, errors in cases:
        response = api.post("/api/v1/alert-rules/", body, format="json")
        assert response.status_code == 400, body
        assert response.json() == errors, body
    assert team.api("viewer").post("/api/v1/alert-rules/", rate, format="json").status_code == 403

    rule = api.post("/api/v1/alert-rules/", rate, format="json").json()
    changed = api.patch(f"/api/v1/alert-rules/{rule['id']}/", {"kind": "source_volume"}, format="json")
    assert changed.json() == {"kind": ["A rule keeps its kind and subject; create a new rule instead."]}


def test_a_slack_webhook_on_a_private_address_is_refused(team, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    response = team.api("owner").post(
        "/api/v1/alert-rules/",
        {
            "kind": "delivery_rate",
            "destination": team.warehouse.id,
            "threshold": 90,
            "channels": ["slack"],
            "slack_webhook_url": "http://192.168.1.20/hook",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "slack_webhook_url": [
            "192.168.1.20 resolves to 192.168.1.20, a loopback, private, link-local or reserved address;"
            " this deployment does not deliver to those."
        ]
    }
