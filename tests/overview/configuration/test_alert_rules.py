"""The alert rule service called directly: what each kind of rule watches, its threshold's range, the
channels it can send on, with the exact messages per field."""

import pytest

from overview.configuration.alert_rules import create_rule, update_rule
from tests.factories import make_destination, make_source, make_user, make_workspace
from tests.overview.configuration.refused import field_errors


@pytest.fixture
def watched(db):
    workspace = make_workspace("Acme")
    web = make_source(workspace, "Web app")
    warehouse = make_destination(workspace, "http://127.0.0.1:9/hook", name="Warehouse", sources=[web])
    return {"workspace": workspace, "web": web, "warehouse": warehouse}


def test_a_rate_rule_is_in_its_destinations_workspace_with_channels_in_order(watched, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    owner = make_user("olivia")

    rule = create_rule(
        {
            "kind": "delivery_rate",
            "destination": watched["warehouse"],
            "threshold": 99,
            "channels": ["slack", "email", "in_app", "email"],
            "slack_webhook_url": "http://127.0.0.1:9999/hooks/T000",
            "created_by": owner,
        }
    )

    rule.refresh_from_db()
    assert (rule.workspace, rule.channels, rule.created_by) == (
        watched["workspace"],
        ["in_app", "email", "slack"],
        owner,
    )
    assert rule.slack_webhook_url == "http://127.0.0.1:9999/hooks/T000"
    assert "T000" not in rule.slack_webhook_encrypted
    update_rule(rule, {"slack_webhook_url": "", "channels": ["in_app"]})
    rule.refresh_from_db()
    assert (rule.slack_webhook_url, rule.channels) == ("", ["in_app"])


def test_each_kind_watches_its_own_subject(watched):
    rate = {"kind": "delivery_rate", "destination": watched["warehouse"], "threshold": 90}

    assert field_errors(create_rule, {**rate, "source": watched["web"]}) == {
        "destination": ["A delivery_rate rule watches one destination (and no source)."]
    }
    assert field_errors(
        create_rule, {"kind": "source_volume", "destination": watched["warehouse"], "threshold": 10}
    ) == {"source": ["A source_volume rule watches one source (and no destination)."]}
    rule = create_rule(rate)
    assert field_errors(update_rule, rule, {"kind": "source_volume"}) == {
        "kind": ["A rule keeps its kind and subject; create a new rule instead."]
    }


def test_thresholds_channels_and_recipients_are_checked(watched):
    rate = {"kind": "delivery_rate", "destination": watched["warehouse"], "threshold": 90}

    assert field_errors(create_rule, {**rate, "threshold": 101}) == {
        "threshold": ["A delivery rate threshold is a percentage above 0, up to 100."]
    }
    assert field_errors(
        create_rule, {"kind": "source_volume", "source": watched["web"], "threshold": -5}
    ) == {"threshold": ["A volume threshold is a percentage change above 0, up to 10000."]}
    assert field_errors(create_rule, {**rate, "channels": ["slack"]}) == {
        "slack_webhook_url": ["The Slack channel needs a webhook URL."]
    }
    assert field_errors(
        create_rule, {**rate, "min_volume": -1, "email_recipients": ["a@watched.test", "nobody"]}
    ) == {
        "min_volume": ["Ensure this value is greater than or equal to 0."],
        "email_recipients": ["item 2: Enter a valid email address."],
    }
    too_long = "https://hooks.example.com/" + "x" * 500
    assert field_errors(create_rule, {**rate, "slack_webhook_url": too_long}) == {
        "slack_webhook_url": ["Ensure this field has no more than 500 characters."]
    }
