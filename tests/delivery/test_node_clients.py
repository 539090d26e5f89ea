"""The server-side Node SDKs (from npm, run by node) against a live server: an application changes only
its host, and every call arrives once, with its fields."""

import pytest
from django.db.models import Count

from delivery.models import Event
from tests.delivery.test_browser_sdks import wait_for_events
from tests.factories import make_source, make_workspace
from tests.sdks.node import run_server_side


@pytest.mark.parametrize("sdk", ["segment", "legacy", "rudderstack"])
def test_a_node_sdk_delivers_every_call_with_its_fields(live_server, transactional_db, sdk):
    source = make_source(make_workspace(), "Back end")

    assert run_server_side(sdk, live_server.url, source.write_key, 23).strip() == "sent"

    events = wait_for_events(source, 25)
    assert len(events) == 25  # 23 tracks in batches of 5, an identify, a group: none lost, none twice
    counts = dict(Event.objects.filter(source_id=source.id).values_list("type").annotate(n=Count("id")))
    assert counts == {"track": 23, "identify": 1, "group": 1}
    tracks = sorted((e.payload for e in events if e.type == "track"), key=lambda p: p["properties"]["order"])
    assert [t["properties"]["order"] for t in tracks] == list(range(23))
    assert [t["userId"] for t in tracks[:2]] == ["user-0", "user-1"]
    assert all(e.timestamp and "receivedAt" in e.payload for e in events)
    by_type = {e.type: e.payload for e in events}
    assert by_type["identify"]["traits"] == {"plan": "pro"} and by_type["group"]["groupId"] == "acme"
