"""An application instrumented with segment-analytics-python or rudder-sdk-python changes only its host
to send here: its calls arrive, its batches are stored, and it understands our errors."""

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics import Client
from segment.analytics.request import APIError

from delivery.models import Event
from tests.conftest import wait_until
from tests.delivery.test_ingest import step_counts
from tests.delivery.test_routing import outcome_counts
from tests.delivery.test_routing_e2e import as_routed, wait_until_delivered
from tests.factories import make_destination, make_mapping, make_source, make_workspace


@pytest.fixture
def source(transactional_db):
    return make_source(make_workspace())


def test_every_call_of_the_client_is_stored_with_its_type(live_server, source):
    client = Client(source.write_key, host=live_server.url, sync_mode=True, gzip=True)

    client.track("user-1", "Order Completed", {"total": 30}, context={"app": {"version": "4.1"}})
    client.identify("user-1", {"email": "ada@example.com"})
    client.page("user-1", "Docs", "Pricing")
    client.screen("user-1", "App", "Home")
    client.group("user-1", "group-9", {"name": "Acme"})
    client.alias("user-1", "user-2")

    events = Event.objects.filter(source_id=source.id).order_by("id")
    assert [(e.type, e.name, e.app_version) for e in events] == [
        ("track", "Order Completed", "4.1"),
        ("identify", "", ""),
        ("page", "Pricing", ""),
        ("screen", "Home", ""),
        ("group", "", ""),
        ("alias", "", ""),
    ]
    assert events[0].payload["properties"] == {"total": 30}
    assert events[0].payload["context"]["library"]["name"] == "analytics-python"
    assert step_counts(source.id) == {("received", ""): 6}


def test_the_clients_background_batches_are_all_stored(live_server, source):
    client = Client(source.write_key, host=live_server.url, upload_size=100, upload_interval=0.05)

    for i in range(250):
        client.track(f"user-{i}", "Viewed", {"i": i})
    client.flush()
    client.join()

    assert Event.objects.filter(source_id=source.id).count() == 250
    assert step_counts(source.id) == {("received", ""): 250}


def test_the_client_reads_our_error_for_an_unknown_write_key(live_server, source):
    client = Client("not-a-write-key", host=live_server.url, sync_mode=True)

    with pytest.raises(APIError) as failed:
        client.track("user-1", "Viewed")

    error = failed.value
    assert (error.status, error.code) == (401, "unknown_source")
    assert error.message == "Unknown write key: no source has this write key."


@pytest.fixture
def endpoint(sandbox):
    return f"{sandbox.url}/client-e2e/webhook"


@pytest.mark.e2e
def test_a_clients_events_are_routed_to_their_mappings_by_the_worker(
    celery_worker, live_server, source, endpoint
):
    destination = make_destination(source.workspace, endpoint, sources=[source])
    orders = make_mapping(destination, "Orders", trigger={"event": ["Order Completed"]})
    people = make_mapping(destination, "People", trigger={"type": ["identify"]})
    client = Client(source.write_key, host=live_server.url, upload_size=20, upload_interval=0.05, gzip=True)

    for i in range(50):
        client.track(f"user-{i}", "Order Completed", {"total": i})
    for i in range(10):
        client.identify(f"user-{i}", {"plan": "pro"})
    client.flush()
    client.join()
    wait_until(
        lambda: Event.objects.filter(source_id=source.id).exclude(routed_at=None).count() == 60,
        timeout=30,
        what="the worker to route the client's 60 events",
    )

    filtered = ("filtered_at_destination", "FILTERED_AT_MAPPING")
    assert as_routed(outcome_counts(destination.id)) == {
        (orders.id, "queued", ""): 50,
        (orders.id, *filtered): 10,
        (people.id, "queued", ""): 10,
        (people.id, *filtered): 50,
    }
    wait_until_delivered(destination)


def test_the_rudderstack_python_client_is_stored_in_sync_and_background_batches(live_server, source):
    """rudder-sdk-python posts gzip batches to /v1/batch with the write key as basic auth: its calls
    arrive, once each, with their fields, whether sent one by one or in background batches."""
    sync = RudderClient(source.write_key, host=live_server.url, sync_mode=True, gzip=True)
    sync.track("user-1", "Order Completed", {"total": 30}, context={"app": {"version": "4.1"}})
    sync.identify("user-1", {"email": "ada@example.com"})
    sync.group("user-1", "group-9", {"name": "Acme"})
    background = RudderClient(source.write_key, host=live_server.url, upload_size=40, upload_interval=0.05)
    for i in range(120):
        background.track(anonymous_id=f"anon-{i}", event="Viewed", properties={"i": i})
    background.flush()
    background.join()

    events = list(Event.objects.filter(source_id=source.id).order_by("id"))
    assert [(e.type, e.name, e.app_version) for e in events[:3]] == [
        ("track", "Order Completed", "4.1"),
        ("identify", "", ""),
        ("group", "", ""),
    ]
    assert events[0].payload["properties"] == {"total": 30}
    assert events[0].payload["context"]["library"]["name"] == "analytics-python"
    assert events[1].payload["context"]["traits"] == {"email": "ada@example.com"}  # where this client puts it
    viewed = sorted(e.payload["properties"]["i"] for e in events[3:])
    assert viewed == list(range(120))  # none lost, none twice
    assert step_counts(source.id) == {("received", ""): 123}
