"""The event endpoints, on what the in-process pipeline recorded against a real local HTTP server: the
lookup by messageId, userId and anonymousId, the trace with every attempt, a batch request, and the
undelivered list and its CSV, which must match the outcome rows exactly. Another workspace's member
finds nothing and gets 404s."""

import csv
import io
from typing import NamedTuple

import pytest
from django.db import connection
from rest_framework.test import APIClient
from werkzeug import Response

from delivery import batching
from delivery.models import Destination, Mapping, Membership
from tests.delivery.test_delivery import queue_events, setup_destination, track
from tests.delivery.test_history import make_due
from tests.factories import make_user, make_workspace


@pytest.fixture
def recorded(transactional_db, httpserver, fast_retries):
    """12 events to a destination that refuses the ones marked bad (400) and fails the first try of
    the rest with a 503: 3 end failed, 9 delivered on their second attempt."""
    tries = {"n": 0}

    def answer(request):
        tries["n"] += 1
        if tries["n"] == 1:
            return Response('{"error": "busy"}', 503, content_type="application/json")
        batch = request.get_json()["batch"]
        if any(item.get("properties", {}).get("bad") for item in batch):
            return Response('{"error": "invalid email"}', 400, content_type="application/json")
        return Response('{"ok": true}', 200, content_type="application/json")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    destination, mapping = setup_destination(httpserver.url_for("/hook"), batch_size=3)
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    messages = [track(i, anonymousId=f"anon-{i % 2}") for i in range(9)]
    messages += [track(i, properties={"bad": True}) for i in range(9, 12)]
    queue_events(destination, mapping, messages)
    for _ in range(4):
        batching.deliver_due(destination.id, mapping.id)
        make_due(destination)
    client = APIClient()
    client.force_authenticate(user)
    return Recorded(destination, mapping, user, client)


class Recorded(NamedTuple):
    destination: Destination
    mapping: Mapping
    user: object
    client: APIClient


def test_a_lookup_by_message_id_traces_the_event_attempt_by_attempt(recorded):
    destination, mapping, _, client = recorded

    [event] = client.get("/api/v1/events/", {"message_id": "msg-4"}).json()

    assert event["message_id"] == "msg-4" and event["body"]["properties"]["n"] == 4
    assert event["ingest"]["verdict"] == "accepted"
    [delivery] = event["deliveries"]
    assert (delivery["destination"], delivery["mapping"], delivery["step"]) == (
        destination.id,
        mapping.id,
        "delivered",
    )
    statuses = [(a["number"], a["status"], a["step"]) for a in delivery["attempts"]]
    assert statuses in ([(1, 503, "pending_retry"), (2, 200, "delivered")], [(1, 200, "delivered")])
    request = client.get(delivery["attempts"][-1]["request"]).json()
    assert request["status"] == 200 and request["size"] == 3 and '"msg-4"' in request["request_body"]


def test_a_lookup_by_user_or_anonymous_id_finds_every_event_of_that_user(recorded):
    _, _, _, client = recorded

    by_user = client.get("/api/v1/events/", {"user_id": "user-3"}).json()
    by_anonymous = client.get("/api/v1/events/", {"anonymous_id": "anon-1"}).json()

    assert [e["message_id"] for e in by_user] == ["msg-3"]
    assert sorted(e["message_id"] for e in by_anonymous) == ["msg-1", "msg-3", "msg-5", "msg-7"]
    assert client.get("/api/v1/events/", {}).status_code == 400
    assert client.get("/api/v1/events/", {"message_id": "a\x00b"}).status_code == 400


def test_another_workspace_finds_nothing(recorded):
    destination, _, _, client = recorded
    stranger = make_user()
    make_workspace(owner=stranger)
    other = APIClient()
    other.force_authenticate(stranger)
    [event] = client.get("/api/v1/events/", {"message_id": "msg-0"}).json()
    request_url = event["deliveries"][0]["attempts"][0]["request"]

    assert other.get("/api/v1/events/", {"message_id": "msg-0"}).json() == []
    assert other.get(f"/api/v1/events/{event['id']}/").status_code == 404
    assert other.get(request_url).status_code == 404
    assert other.get(f"/api/v1/destinations/{destination.id}/undelivered/").status_code == 404
    assert other.get(f"/api/v1/destinations/{destination.id}/undelivered.csv").status_code == 404


def undelivered_outcomes(destination) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.message_id, o.step, o.reason_code, o.status, o.attempts FROM delivery_outcome o"
            " JOIN delivery_event e ON e.id = o.event_id AND e.received_at = o.received_at"
            " WHERE o.destination_id = %s AND o.mapping_id IS NOT NULL"
            " AND o.step IN ('failed_delivery', 'pending_retry') ORDER BY o.received_at DESC, o.id DESC",
            [destination.id],
        )
        return cursor.fetchall()


def test_the_undelivered_list_and_its_csv_match_the_outcome_rows(recorded):
    destination, _, _, client = recorded
    truth = undelivered_outcomes(destination)
    assert sorted(row[0] for row in truth) == ["msg-10", "msg-11", "msg-9"]

    page = client.get(f"/api/v1/destinations/{destination.id}/undelivered/").json()
    rows = [
        (r["message_id"], r["step"], r["reason_code"], r["status"], r["attempts"]) for r in page["results"]
    ]
    assert rows == truth and page["next"] is None

    answer = client.get(f"/api/v1/destinations/{destination.id}/undelivered.csv")
    assert answer["Content-Type"] == "text/csv" and answer.streaming
    table = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert [
        (r["message_id"], r["step"], r["reason_code"], int(r["status"]), int(r["attempts"])) for r in table
    ] == truth

    filtered = client.get(f"/api/v1/destinations/{destination.id}/undelivered/", {"status": 503}).json()
    assert filtered["results"] == []
    assert (
        client.get(f"/api/v1/destinations/{destination.id}/undelivered/", {"status": "99999"}).status_code
        == 400
    )


def test_the_undelivered_list_pages_by_cursor(transactional_db, fast_retries):
    destination, mapping = setup_destination("http://127.0.0.1:9/closed", max_retries=0)
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    queue_events(destination, mapping, [track(i) for i in range(120)])
    for _ in range(2):
        batching.deliver_due(destination.id, mapping.id)
    client = APIClient()
    client.force_authenticate(user)
    truth = [row[0] for row in undelivered_outcomes(destination)]
    assert len(truth) == 120

    seen, cursor = [], None
    while True:
        page = client.get(
            f"/api/v1/destinations/{destination.id}/undelivered/", {"cursor": cursor or ""}
        ).json()
        seen += [r["message_id"] for r in page["results"]]
        if not (cursor := page["next"]):
            break
    assert seen == truth
    bad = client.get(f"/api/v1/destinations/{destination.id}/undelivered/", {"cursor": "not-a-cursor"})
    assert bad.status_code == 400
