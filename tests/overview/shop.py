"""An online shop's workspace for the alert tests (one source, one destination with one mapping, an
owner and a viewer), and the recorded deliveries and arrivals its rules are judged on."""

import datetime as dt
from dataclasses import dataclass

from delivery.models import Destination, Mapping, Source, Workspace
from delivery.recording import Tally, Where
from delivery.steps import Step
from overview.models import AlertRule, Incident
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace


@dataclass
class Shop:
    workspace: Workspace
    web: Source
    warehouse: Destination
    everything: Mapping
    owner: object
    viewer: object


def make_shop() -> Shop:
    owner, viewer = make_user("olivia"), make_user("victor")
    workspace = make_workspace("Acme", owner=owner, viewer=viewer)
    web = make_source(workspace, "Web app")
    warehouse = make_destination(workspace, "https://hooks.example.com/in", name="Warehouse", sources=[web])
    return Shop(workspace, web, warehouse, make_mapping(warehouse, "Everything"), owner, viewer)


def record_deliveries(shop: Shop, at: dt.datetime, delivered: int = 0, failed: int = 0) -> None:
    where = Where(shop.workspace.id, shop.web.id, shop.warehouse.id, shop.everything.id, "track", "Order")
    whole = Where(shop.workspace.id, shop.web.id, shop.warehouse.id, None, "track", "Order")
    tally = Tally()
    for at_, n_delivered, n_failed in ((where, delivered, failed), (whole, delivered, failed)):
        # The mapping's pairs and, one mapping reached, the same events as a whole (mapping NULL).
        if n_delivered:
            tally.add(at, at_, Step.DELIVERED, "", n_delivered)
        if n_failed:
            tally.add(at, at_, Step.FAILED_DELIVERY, "400", n_failed)
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
