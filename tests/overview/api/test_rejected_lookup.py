"""A message that failed on ingest is found by an event lookup too: sent through the tracking API in a
batch with good messages, it is found by messageId, userId and anonymousId, in the API and on the pages,
with its reason, remedy and body (escaped); never routed; invisible to another workspace. (Its table is
partitioned and dropped with the events': tests/test_foundation.py covers every partitioned table.)"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from delivery.models import Membership
from tests.delivery.test_ingest import post, track
from tests.factories import make_destination, make_source, make_user, make_workspace

BATCH = [
    track(1),  # accepted
    {"type": "track", "userId": "user-1", "messageId": "bad-1"},  # no event name
    {"type": "identify", "userId": 42, "messageId": "bad-2"},  # a number for userId
    {
        "type": "track",
        "event": "Signed Up",
        "anonymousId": "anon-9",
        "messageId": "bad-3",
        "timestamp": "yesterday",
        "properties": {"note": "<script>alert(1)</script>"},
    },
]


@pytest.fixture
def sent(transactional_db):
    workspace = make_workspace()
    source = make_source(workspace)
    answer = post(Client(), "/v1/batch", {"batch": BATCH}, key=source.write_key)
    assert answer.status_code == 200
    user = make_user()
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.VIEWER)
    api = APIClient()
    api.force_authenticate(user)
    return source, user, api


def test_a_message_that_failed_on_ingest_is_found_by_message_id_with_its_reason(sent):
    source, _, api = sent

    [found] = api.get("/api/v1/events/", {"message_id": "bad-1"}).json()

    assert found["ingest"] == {
        "verdict": "failed_on_ingest",
        "reason_code": "event_not_defined",
        "reason": found["ingest"]["reason"],
        "remedy": found["ingest"]["remedy"],
        "error_message": "The track message has no event name.",
    }
    assert found["ingest"]["reason"] and found["ingest"]["remedy"]
    assert found["deliveries"] == [] and found["source"] == source.id
    assert found["body"] == {"type": "track", "userId": "user-1", "messageId": "bad-1"}
    again = api.get(f"/api/v1/events/rejected/{found['id']}/").json()
    assert again == found


def test_a_lookup_by_user_id_finds_the_accepted_and_the_refused_events_of_that_user(sent):
    source, _, api = sent

    found = api.get("/api/v1/events/", {"user_id": "user-1"}).json()

    assert sorted((e["message_id"], e["ingest"]["verdict"]) for e in found) == [
        ("bad-1", "failed_on_ingest"),
        ("msg-1", "accepted"),
    ]
    # A userId sent as a number is found by its digits.
    [numeric] = api.get("/api/v1/events/", {"user_id": "42"}).json()
    assert (numeric["message_id"], numeric["ingest"]["reason_code"]) == ("bad-2", "id_not_string")
    [anonymous] = api.get("/api/v1/events/", {"anonymous_id": "anon-9"}).json()
    assert anonymous["ingest"]["reason_code"] == "invalid_timestamp"
    # Refused messages reached no destination, so a lookup narrowed to one finds none of them.
    destination = make_destination(source.workspace, "https://example.com/hook", sources=[source])
    narrowed = api.get("/api/v1/events/", {"user_id": "user-1", "destination": destination.id}).json()
    assert "bad-1" not in [e["message_id"] for e in narrowed]


def test_another_workspace_sees_no_refused_message(sent):
    _, _, api = sent
    [found] = api.get("/api/v1/events/", {"message_id": "bad-3"}).json()
    other = APIClient()
    other.force_authenticate(make_user())

    assert other.get("/api/v1/events/", {"message_id": "bad-3"}).json() == []
    assert other.get(f"/api/v1/events/rejected/{found['id']}/").status_code == 404


def test_the_lookup_page_opens_the_refused_message_with_its_reason_and_the_body_escaped(sent):
    source, user, _ = sent
    page = Client()
    page.force_login(user)
    slug = source.workspace.slug

    answer = page.get(f"/w/{slug}/events/", {"by": "message_id", "q": "bad-3", "open": "1"}, follow=True)

    assert answer.redirect_chain and "/events/rejected/" in answer.redirect_chain[-1][0]
    html = answer.content.decode()
    assert "failed on ingest" in html and "invalid_timestamp" in html
    assert "timestamp is not an ISO 8601 date: &#x27;yesterday&#x27;." in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    listed = page.get(f"/w/{slug}/events/", {"by": "user_id", "q": "user-1"}).content.decode()
    assert "Failed on ingest: " in listed and listed.count("data-event=") == 2
