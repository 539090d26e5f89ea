"""The pages that follow events, on what the in-process pipeline recorded (see tests/overview/api/
test_events.py): the lookup from the overview's search, the trace with every attempt and the payload
escaped, the batch request, and the undelivered list with its CSV, whose rows are the outcome rows."""

import csv
import io

from django.test import Client

from delivery.models import Event
from tests.factories import make_user, make_workspace
from tests.overview.api.test_events import recorded, undelivered_outcomes  # noqa: F401 (a fixture)
from tests.overview.page_text import text as visible_text


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_overview_search_opens_the_trace_with_every_attempt(recorded):  # noqa: F811
    destination, mapping, user, _ = recorded
    client = logged_in(user)
    slug = destination.workspace.slug
    overview = client.get(f"/w/{slug}/destinations/{destination.id}/").content.decode()
    assert (
        f'action="/w/{slug}/events/"' in overview
        and f'name="destination" value="{destination.id}"' in overview
    )

    found = client.get(
        f"/w/{slug}/events/", {"by": "message_id", "q": "msg-0", "destination": destination.id, "open": "1"}
    )
    assert found.status_code == 302
    trace = client.get(found["Location"])
    text = visible_text(trace)
    assert "msg-0" in text and "Successful delivery" in text
    page = trace.content.decode()
    assert page.count("data-attempt=") == 2  # a 503, retried, then a 200
    assert "data-status>503<" in page and "data-status>200<" in page


def test_a_payload_is_escaped_on_the_trace(recorded):  # noqa: F811
    destination, _, user, api = recorded
    [event] = api.get("/api/v1/events/", {"message_id": "msg-0"}).json()
    Event.objects.filter(id=event["id"]).update(
        payload={"note": "<script>alert(1)</script>", **event["body"]}
    )
    page = logged_in(user).get(f"/w/{destination.workspace.slug}/events/{event['id']}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_batch_request_page_shows_what_was_sent_and_what_came_back(recorded):  # noqa: F811
    destination, _, user, api = recorded
    [event] = api.get("/api/v1/events/", {"message_id": "msg-0"}).json()
    first = event["deliveries"][0]["attempts"][0]
    request_id = first["request"].rstrip("/").rsplit("/", 1)[1]
    page = logged_in(user).get(f"/w/{destination.workspace.slug}/requests/{request_id}/?event={event['id']}")
    text = visible_text(page)
    assert page.status_code == 200 and "503" in text and "busy" in text and '"msg-0"' in text

    stranger = make_user()
    make_workspace(owner=stranger)
    other = logged_in(stranger)
    assert other.get(f"/w/{destination.workspace.slug}/requests/{request_id}/").status_code == 404


def test_the_undelivered_page_and_its_csv_list_the_outcome_rows(recorded):  # noqa: F811
    destination, _, user, _ = recorded
    client = logged_in(user)
    url = f"/w/{destination.workspace.slug}/destinations/{destination.id}/undelivered/"
    truth = undelivered_outcomes(destination)

    page = client.get(url).content.decode()
    assert page.count("data-outcome=") == len(truth) == 3
    as_csv = client.get(url, {"format": "csv", "status": "400"})
    rows = list(csv.DictReader(io.StringIO(b"".join(as_csv.streaming_content).decode())))
    assert [r["message_id"] for r in rows] == [row[0] for row in truth]
    assert client.get(url, {"status": "abc"}).status_code == 400
    assert client.get(url, {"reason": "no-such-reason"}).content.decode().count("data-outcome=") == 0


def test_the_overview_shows_the_recovery_figures(recorded, settings):  # noqa: F811
    settings.DASHBOARD_LOOKBACK_MINUTES = 0  # this minute's events in the window
    destination, _, user, _ = recorded
    page = logged_in(user).get(f"/w/{destination.workspace.slug}/destinations/{destination.id}/?range=1h")
    html = page.content.decode()
    # 9 delivered: 6 on the first attempt, 3 after the first batch's 503; 3 failed on a 400.
    assert "66.7%" in visible_text(page) and "6 on attempt 1 · 3 on attempt 2" in visible_text(page)
    assert "data-throttled>0 event attempts<" in html
