"""The alert rule pages as owners use them: a rule made on a destination's or source's Alerts tab,
edited, muted and deleted."""

from overview.models import AlertRule
from tests.factories import make_destination, make_source
from tests.overview.page_text import text


def test_alert_rules_from_the_alerts_tab_muted_and_deleted(acme, client):
    client.force_login(acme["owner"])
    slug = acme["workspace"].slug
    web = make_source(acme["workspace"], "Web app")
    hook = make_destination(acme["workspace"], "http://127.0.0.1:9/hook", name="Warehouse", sources=[web])
    tab = f"/w/{slug}/destinations/{hook.id}/alerts/"
    page = text(client.get(tab))
    assert (
        "Delivery success rate = events delivered ÷ (delivered + failed delivery) over the last 24 hours"
        in page
    )

    missing = client.post(tab, {"threshold": "95", "min_volume": "0", "channels": ["slack"]})
    assert "The Slack channel needs a webhook URL." in text(missing)
    created = client.post(
        tab,
        {
            "threshold": "95",
            "min_volume": "10",
            "channels": ["in_app", "email"],
            "email_recipients": "a@acme.test",
        },
    )
    assert created.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.kind, rule.destination, rule.threshold, rule.min_volume) == ("delivery_rate", hook, 95, 10)
    assert (rule.channels, rule.email_recipients, rule.created_by) == (
        ["in_app", "email"],
        ["a@acme.test"],
        acme["owner"],
    )
    assert "Delivery success rate of Warehouse below 95% over 24 hours" in text(client.get(tab))

    assert client.post(f"/w/{slug}/alerts/rules/{rule.id}/mute/").status_code == 302
    rule.refresh_from_db()
    assert rule.muted is True
    edit = client.post(
        f"/w/{slug}/alerts/rules/{rule.id}/",
        {"threshold": "90", "min_volume": "0", "channels": ["in_app"], "muted": "on"},
    )
    assert edit.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.channels, rule.muted) == (90, ["in_app"], True)

    source_tab = f"/w/{slug}/sources/{web.id}/alerts/"
    assert (
        client.post(source_tab, {"threshold": "30", "min_volume": "5", "channels": ["in_app"]}).status_code
        == 302
    )
    assert (
        AlertRule.objects.get(kind="source_volume").description
        == "Volume of Web app more than 30% off its usual level"
    )

    assert client.post(f"/w/{slug}/alerts/rules/{rule.id}/delete/").status_code == 302
    assert not AlertRule.objects.filter(id=rule.id).exists()
