"""The demo workspace: what `manage.py demo` sets up, and that its printed login works."""

import random

from django.test import Client

from delivery.models import Destination, Mapping, Source, Workspace
from devtools import demo


def logs_in(username: str, password: str) -> bool:
    """Through the login page, as the operator does (django-axes checks logins made with a request)."""
    response = Client().post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and response.url == "/"


def test_demo_setup_wires_two_sources_to_three_destinations_and_its_login_works(db):
    setup = demo.set_up("http://127.0.0.1:8765")

    assert logs_in(setup.username, setup.password)
    assert list(
        Source.objects.filter(workspace=setup.workspace).values_list("name", flat=True).order_by("name")
    ) == [
        "Checkout app (iOS)",
        "Storefront (web)",
    ]
    destinations = {d.name: d for d in Destination.objects.filter(workspace=setup.workspace)}
    assert {name: d.endpoint for name, d in destinations.items()} == {
        "Data warehouse": "http://127.0.0.1:8765/healthy/webhook",
        "Customer.io": "http://127.0.0.1:8765/partial",
        "Partner API": "http://127.0.0.1:8765/partner/webhook",
    }
    assert all(d.sources.count() == 2 for d in destinations.values())
    assert destinations["Customer.io"].credentials == {"site_id": "demo-site", "api_key": "demo-api-key"}
    assert Mapping.objects.filter(destination__workspace=setup.workspace).count() == 7
    rules = {
        (r.kind, r.destination_id or r.source_id, r.threshold) for r in setup.workspace.alert_rules.all()
    }
    web = Source.objects.get(workspace=setup.workspace, name="Storefront (web)")
    assert rules == {("delivery_rate", destinations["Partner API"].id, 99), ("source_volume", web.id, 50)}


def test_demo_setup_is_idempotent_and_refreshes_the_sandbox_address(db):
    demo.set_up("http://127.0.0.1:8765")
    again = demo.set_up("http://127.0.0.1:9999")

    assert Workspace.objects.count() == 1
    assert Destination.objects.count() == 3 and Mapping.objects.count() == 7
    assert again.workspace.alert_rules.count() == 2
    assert Destination.objects.get(name="Data warehouse").endpoint == "http://127.0.0.1:9999/healthy/webhook"
    assert logs_in(again.username, again.password)


def test_demo_traffic_is_mostly_valid_with_a_few_malformed_messages():
    r = random.Random(7)
    messages = [demo.make_message(r, mobile=False) for _ in range(2000)]

    without_user = sum("userId" not in m for m in messages)
    assert 20 <= without_user <= 60  # about 2 %
    assert all(m["type"] in {"track", "identify", "page", "screen", "alias"} for m in messages)
    assert len({m["messageId"] for m in messages}) == 2000
