"""The demo workspace: what `manage.py demo` sets up, and that its printed login works."""

import base64
import json
import random

import pytest
from django.db import connection
from django.test import Client

from delivery import delivering
from delivery.destinations import ADAPTERS
from delivery.models import Destination, Mapping, Source, Workspace
from devtools import demo
from overview.configuration.destinations import check_rules
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery_e2e import WORKER_ENV


def logs_in(username: str, password: str) -> bool:
    """Through the login page, as the operator does (django-axes checks logins made with a request)."""
    response = Client().post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and response.url == "/"


def test_demo_setup_wires_two_sources_to_a_destination_of_each_kind_and_its_login_works(db):
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
        "Mixpanel": "http://127.0.0.1:8765/mixpanel",
        "Amplitude": "http://127.0.0.1:8765/amplitude",
        "Braze": "http://127.0.0.1:8765/braze",
        "EU collector": "http://127.0.0.1:8765/collector",
        "Partner API": "http://127.0.0.1:8765/partner/webhook",
    }
    assert {d.kind for d in destinations.values()} == set(ADAPTERS)
    for destination in destinations.values():  # each one's settings are usable as they are
        target = delivering.target_for(destination, destination.mappings.first())
        assert target.adapter is not None, (destination.name, target.settings_error)
    assert check_rules({}, destinations["Braze"]) == {}  # its batch size fits Braze's limit
    assert all(d.sources.count() == 2 for d in destinations.values())
    assert destinations["Customer.io"].credentials == {"site_id": "demo-site", "api_key": "demo-api-key"}
    assert Mapping.objects.filter(destination__workspace=setup.workspace).count() == 11
    rules = {
        (r.kind, r.destination_id or r.source_id, r.threshold) for r in setup.workspace.alert_rules.all()
    }
    web = Source.objects.get(workspace=setup.workspace, name="Storefront (web)")
    assert rules == {("delivery_rate", destinations["Partner API"].id, 99), ("source_volume", web.id, 50)}


def test_demo_setup_is_idempotent_and_refreshes_the_sandbox_address(db):
    demo.set_up("http://127.0.0.1:8765")
    again = demo.set_up("http://127.0.0.1:9999")

    assert Workspace.objects.count() == 1
    assert Destination.objects.count() == 7 and Mapping.objects.count() == 11
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


@pytest.fixture(scope="module")
def demo_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "demo", WORKER_ENV)


@pytest.mark.e2e
def test_the_demo_destinations_each_deliver_in_their_own_dialect(demo_worker, transactional_db, sandbox):
    """The demo's setup and sandbox profiles, its traffic over HTTP, the real worker: every new destination
    kind delivers, Mixpanel and Braze fail a few events in their partial answers, the collector's batches
    are split under its 413 and all delivered, and every event ends at a final step."""
    demo.configure_sandbox(sandbox.url)
    setup = demo.set_up(sandbox.url)
    r = random.Random(7)
    messages = [demo.make_message(r, mobile=False) for _ in range(300)]
    auth = base64.b64encode(f"{setup.write_keys['web']}:".encode()).decode()
    for start in range(0, len(messages), 100):
        response = Client().post(
            "/v1/batch",
            json.dumps({"batch": messages[start : start + 100]}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Basic {auth}",
        )
        assert response.status_code == 200
    new_kinds = ("mixpanel", "amplitude", "braze", "tracking_api")
    destinations = {d.kind: d for d in Destination.objects.filter(kind__in=new_kinds)}

    def settled():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT destination_id, step, count(*) FROM delivery_outcome WHERE mapping_id IS NOT NULL"
                " AND destination_id = ANY(%s) GROUP BY 1, 2",
                [[d.id for d in destinations.values()]],
            )
            steps = {(d, s): n for d, s, n in cursor.fetchall()}
        return None if not steps or any(s in ("queued", "pending_retry") for _, s in steps) else steps

    steps = wait_until(settled, timeout=90, what="the demo destinations' outcomes to settle")
    for kind, destination in destinations.items():
        assert steps.get((destination.id, "delivered"), 0) > 0, kind
    for kind in ("mixpanel", "braze"):  # 5 % rejected in their own partial answers
        assert steps.get((destinations[kind].id, "failed_delivery"), 0) > 0, kind
    collector = destinations["tracking_api"]
    assert steps.get((collector.id, "failed_delivery"), 0) == 0
    answers = sandbox.state("collector")["counters"]["answers"]
    assert answers.get("413", 0) > 0 and answers.get("200", 0) > answers["413"]
