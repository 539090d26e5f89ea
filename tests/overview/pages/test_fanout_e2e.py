"""End to end, a destination whose two mappings overlap: events sent over HTTP are routed to one, both or
neither mapping and delivered by a real worker to a real local HTTP server that answers 500 to one
mapping's poisoned events (pending a retry, then failed). Under "All mappings" the overview page, the
figures API and the workspace home count each event once, by the rule the page states, so the steps
add up to received; each mapping's own view is unchanged; the deliveries behind it are one click away."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.urls import reverse

from delivery.fanout import RULE
from delivery.models import DestinationThrottle
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery_e2e import WORKER_ENV
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace
from tests.overview.page_text import card

pytestmark = pytest.mark.e2e


class Warehouse(BaseHTTPRequestHandler):
    """Accepts every batch, except one holding an item with a top-level "poison" (only the "Tracks"
    mapping sends that field): 500, retryable, every time."""

    poisoned_status, poisoned_headers = 500, {}

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        poisoned = any(isinstance(item, dict) and item.get("poison") for item in body["batch"])
        status, answer = (
            (self.poisoned_status, {"error": "warehouse down"}) if poisoned else (200, {"ok": True})
        )
        encoded = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in (self.poisoned_headers if poisoned else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, *args):
        pass


class BusyWarehouse(Warehouse):
    """The poisoned batches get 503 and "come back in ten minutes": they wait, pending a retry."""

    poisoned_status, poisoned_headers = 503, {"Retry-After": "600"}


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def warehouse():
    yield from serve(Warehouse)


@pytest.fixture
def busy_warehouse():
    yield from serve(BusyWarehouse)


@pytest.fixture(scope="module")
def fanout_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "fanout", WORKER_ENV)


def messages() -> list[dict]:
    """20 orders (both mappings), 5 sign-ups (Tracks only), 5 identifies (neither); every fourth track
    is poisoned: 0, 4, 8, 12, 16 among the orders, 20 and 24 among the sign-ups."""
    out = []
    for i in range(30):
        body = {"messageId": f"fan-{i}", "userId": f"user-{i}"}
        if i < 25:
            event = "Order Completed" if i < 20 else "Signed Up"
            body |= {"type": "track", "event": event, "properties": {"poison": i % 4 == 0, "n": i}}
        else:
            body |= {"type": "identify", "traits": {"plan": "pro"}}
        out.append(body)
    return out


def api(client, destination, **params) -> dict:
    response = client.get(f"/api/v1/destinations/{destination.id}/pipeline/", params)
    assert response.status_code == 200, response.content
    return response.json()


def counts(body: dict) -> dict[str, int]:
    return {s["step"]: s["count"] for s in body["steps"]}


def home_row(html: str, name: str) -> list[str]:
    row = re.search(rf"<tr>\s*<td><a class=\"strong\" href=\"[^\"]*\">{name}</a>.*?</tr>", html, re.S)
    assert row, f"no home row for {name}"
    return [
        " ".join(re.sub(r"<[^>]+>", " ", td).split())
        for td in re.findall(r"<td[^>]*>(.*?)</td>", row[0], re.S)
    ]


def send_to_two_mappings(url: str, live_server, client, **destination_options):
    """A warehouse destination with overlapping mappings (Orders ⊂ Tracks), sent messages() once."""
    owner = make_user()
    workspace = make_workspace("Shop", owner=owner)
    web = make_source(workspace, "Web app")
    destination = make_destination(
        workspace, url, name="Data warehouse", sources=[web], batch_size=1, **destination_options
    )
    orders = make_mapping(destination, "Orders", trigger={"type": ["track"], "event": ["Order Completed"]})
    tracks = make_mapping(
        destination,
        "Tracks",
        trigger={"type": ["track"]},
        fields={"event": "event", "poison": "properties.poison"},
    )
    answer = httpx.post(f"{live_server.url}/v1/batch", json={"batch": messages()}, auth=(web.write_key, ""))
    assert answer.status_code == 200, answer.text
    client.force_login(owner)
    return workspace, destination, orders, tracks


def test_overlapping_mappings_count_each_event_once_on_the_page_the_api_and_the_home(
    fanout_worker, transactional_db, warehouse, live_server, client, settings
):
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    workspace, destination, orders, tracks = send_to_two_mappings(
        warehouse, live_server, client, max_retries=1
    )

    def settled() -> bool:
        steps = counts(api(client, destination, range="1h"))
        return steps["delivered"] + steps["failed_delivery"] == 25 and not steps["pending_retry"]

    wait_until(settled, timeout=120, what="every event delivered or failed after its retry")

    # The figures API, all mappings: each event once. Orders delivered by both mappings count once
    # delivered; a poisoned order failed at Tracks is failed (retries exhausted after a 500 pending).
    body = api(client, destination, range="1h")
    expected = {
        "received": 30, "failed_on_ingest": 0, "filtered_at_source": 0, "filtered_at_destination": 5,
        "pending_retry": 0, "failed_delivery": 7, "delivered": 18,
    }  # fmt: skip
    assert counts(body) == expected
    assert sum(n for step, n in expected.items() if step != "received") == expected["received"]
    assert body["awaiting_delivery"] == 0
    deliveries = {s["step"]: (s["deliveries"], s["deliveries_mappings"]) for s in body["steps"]}
    assert deliveries["delivered"] == (20 + 18, 2) and deliveries["failed_delivery"] == (7, 1)
    assert deliveries["pending_retry"] == (0, 0) and deliveries["received"] == (None, 0)
    assert body["delivery_success_rate"] == round(18 * 100 / 25, 2)
    reasons = client.get(
        f"/api/v1/destinations/{destination.id}/discards/", {"range": "1h", "step": "failed_delivery"}
    ).json()
    assert [(r["reason_code"], r["count"]) for r in reasons] == [("RETRIES_EXHAUSTED", 7)]

    # Each mapping's own view is its (event, mapping) pairs, as before.
    by_orders = counts(api(client, destination, range="1h", mapping=orders.id))
    assert (by_orders["filtered_at_destination"], by_orders["failed_delivery"], by_orders["delivered"]) == (
        10, 0, 20,
    )  # fmt: skip
    by_tracks = counts(api(client, destination, range="1h", mapping=tracks.id))
    assert (by_tracks["filtered_at_destination"], by_tracks["failed_delivery"], by_tracks["delivered"]) == (
        5, 7, 18,
    )  # fmt: skip
    assert by_orders["delivered"] + by_tracks["delivered"] == deliveries["delivered"][0]

    # The overview page says the same, with the rule and the deliveries one click away.
    url = reverse("destination_overview", args=[workspace.slug, destination.id])
    page = client.get(url, {"range": "1h", "metric": "count"}).content.decode()
    for step, n in expected.items():
        if step == "pending_retry":  # a pill between the cards
            assert re.search(rf"data-in-window>{n} from this window</span>", page)
            assert re.search(r'retry-pill__count" data-now>0</span>', page)  # nothing waits now either
            continue
        assert re.match(rf"\S.* {n} ", card(page, step) + " "), (step, card(page, step))
    assert card(page, "delivered").startswith("Successful delivery 18 ")
    assert card(page, "failed_delivery").startswith("Failed delivery 7 ")
    assert re.search(r'data-deliveries="delivered"[^>]*>38 deliveries across 2 mappings</a>', page)
    assert 'data-deliveries="failed_delivery"' not in page  # 7 deliveries, one mapping: the same 7 events
    assert 'href="#mapping"' in page and RULE in page
    one = client.get(url, {"range": "1h", "metric": "count", "mapping": tracks.id}).content.decode()
    assert card(one, "delivered").startswith("Successful delivery 18 ") and "data-deliveries" not in one

    # The workspace home: delivered, failed and pending per destination from the same per-event rows.
    home = client.get(reverse("workspace", args=[workspace.slug])).content.decode()
    cells = home_row(home, "Data warehouse")
    assert cells[2:4] == ["30", "18"]  # received, delivered: no more delivered than received
    assert cells[4] == "72.0% 7 failed · 0 pending"  # delivery success rate 18 / (18 + 7)
    assert "Delivery success rate" in home


def test_pending_retry_now_counts_what_waits_at_this_moment_each_event_once(
    fanout_worker, transactional_db, busy_warehouse, live_server, client, settings
):
    workspace, destination, orders, tracks = send_to_two_mappings(busy_warehouse, live_server, client)

    # What waits now: the 7 poisoned tracks, each once (5 orders also delivered by Orders). The API has no
    # lookback, so the window's step holds the same 7.
    def waiting() -> dict:
        return api(client, destination, range="1h")["pending_retry_now"]

    def seven_waiting() -> bool:
        # "Come back in ten minutes" pauses the whole destination (delivery.throttle): the pause is lifted
        # here as if those minutes had passed for the batches not yet sent, while each poisoned event
        # keeps its own retry time, ten minutes out.
        DestinationThrottle.objects.filter(destination=destination).update(paused_until=None)
        return waiting()["count"] == 7

    wait_until(seven_waiting, timeout=120, what="the 7 poisoned events pending a retry")
    body = api(client, destination, range="1h")
    assert body["pending_retry"] == 7 and body["pending_retry_now"]["in_window"] == 7
    assert 0 <= body["pending_retry_now"]["oldest_age_seconds"] < 120
    assert api(client, destination, range="1h", mapping=tracks.id)["pending_retry_now"]["count"] == 7
    assert api(client, destination, range="1h", mapping=orders.id)["pending_retry_now"]["count"] == 0

    # The page ends its window 5 minutes back (the default lookback): these seconds-old events are not
    # in the window's step, and the pill shows them waiting all the same.
    url = reverse("destination_overview", args=[workspace.slug, destination.id])
    page = client.get(url, {"range": "1h", "metric": "count"}).content.decode()
    assert 'retry-pill__count" data-now>7</span>' in page and "data-in-window>0 from this window<" in page
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    page = client.get(url, {"range": "1h", "metric": "count"}).content.decode()
    assert 'retry-pill__count" data-now>7</span>' in page and "data-in-window>7 from this window<" in page
    assert "oldest waiting" in page
