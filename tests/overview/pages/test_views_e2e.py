"""End to end: events sent over HTTP go through the real worker to the sandbox destination's partial
and flaky profiles, and the overview page and the API show exactly what happened."""

import datetime as dt
import re
from collections import Counter

import httpx
import pytest
from django.utils import timezone

from delivery.recording import Tally, Where
from delivery.steps import Step
from devtools.sandbox import partial_rejections
from tests.conftest import wait_until
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace
from tests.overview.page_text import card

pytestmark = pytest.mark.e2e


def message(i: int, kind: str = "track", **fields) -> dict:
    body = {
        "type": kind,
        "messageId": f"e2e-{i}",
        "userId": f"user-{i}",
        "context": {"app": {"version": "2.3.0"}},
    }
    if kind == "track":
        body |= {"event": "Order Completed", "properties": {"total": i}}
    return body | fields


def stream() -> list[dict]:
    """58 messages arrive: 40 orders, 10 identifies, 5 sign-ups, 3 without any user id."""
    orders = [message(i) for i in range(40)]
    identifies = [message(100 + i, "identify", traits={"plan": "pro"}) for i in range(10)]
    signups = [message(200 + i, event="Signed Up") for i in range(5)]
    anonymous = [
        {"type": "track", "event": "Order Completed", "messageId": f"e2e-anon-{i}"} for i in range(3)
    ]
    return [*orders, *identifies, *signups, *anonymous]


def api(client, destination, figure: str, **params) -> object:
    response = client.get(f"/api/v1/destinations/{destination.id}/{figure}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def counts(body: dict) -> dict[str, int]:
    return {s["step"]: s["count"] for s in body["steps"]}


def test_the_page_and_the_api_show_exactly_what_the_pipeline_did(
    celery_worker, live_server, sandbox, client, settings
):
    # The test polls the API ten times a second until the pipeline settles: past any per-caller limit.
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "user": None}}
    sandbox.configure("partial", "partial", reject_share=0.2)
    # Flaky: the first request fails with a 503 (the whole batch waits for a retry), then all is well.
    sandbox.configure("flaky", "flaky", cycle=["503"] + ["ok"] * 100)
    owner = make_user()
    workspace = make_workspace("Shop", owner=owner)
    web = make_source(workspace, "Web app")
    partial = make_destination(
        workspace, f"{sandbox.url}/partial/webhook", name="Partial hook", sources=[web]
    )
    orders = make_mapping(partial, "Orders", trigger={"type": ["track"], "event": ["Order Completed"]})
    identifies = make_mapping(partial, "Identifies", trigger={"type": ["identify"]})
    flaky = make_destination(workspace, f"{sandbox.url}/flaky/webhook", name="Flaky hook", sources=[web])
    make_mapping(flaky, "All tracks", trigger={"type": ["track"]})
    # A previous day, as recorded 30 hours ago: 29 received, 20 orders delivered, 2 failed.
    before = timezone.now() - dt.timedelta(hours=30)
    tally = Tally()
    order_dims = ("track", "Order Completed", "2.3.0")
    tally.add(before, Where(workspace.id, web.id, None, None, *order_dims), Step.RECEIVED, n=29)
    tally.add(before, Where(workspace.id, web.id, partial.id, orders.id, *order_dims), Step.DELIVERED, n=20)
    tally.add(
        before,
        Where(workspace.id, web.id, partial.id, orders.id, *order_dims),
        Step.FAILED_DELIVERY,
        "400",
        2,
    )
    tally.write()

    answer = httpx.post(f"{live_server.url}/v1/batch", json={"batch": stream()}, auth=(web.write_key, ""))
    assert answer.status_code == 200, answer.text
    client.force_login(owner)

    def settled() -> bool:
        done = counts(api(client, partial, "pipeline", range="1h"))
        flaky_done = counts(api(client, flaky, "pipeline", range="1h"))
        return done["delivered"] + done["failed_delivery"] == 50 and flaky_done["delivered"] == 45

    # The flaky destination first answers 503: its events wait for a retry, and both views say so.
    wait_until(
        lambda: api(client, flaky, "pipeline", range="1h")["pending_retry"] > 0,
        timeout=60,
        what="a 503 retry",
    )
    pending = api(client, flaky, "pipeline", range="1h")
    assert pending["pending_retry"] + counts(pending)["delivered"] == 45
    reasons = api(client, flaky, "discards", range="1h", step="pending_retry")
    assert [(r["reason_code"], r["reason"]) for r in reasons] == [("503", "503 Service Unavailable")]
    wait_until(settled, timeout=240, what="every delivery to end (the flaky one after its retry)")

    # What the partial destination rejected, from its own answers.
    rejected = Counter()
    for request in sandbox.requests("partial"):
        batch = request["body"]["batch"]
        rejected[batch[0]["type"]] += len(partial_rejections("webhook", batch, 0.2))
    failed_orders, failed_identifies = rejected["track"], rejected["identify"]
    failed = failed_orders + failed_identifies
    assert 0 < failed < 50

    # The API: no lookback, all mappings and one mapping, two ranges.
    for range_key in ("1h", "24h"):
        body = api(client, partial, "pipeline", range=range_key)
        assert counts(body) == {
            "received": 58, "failed_on_ingest": 3, "filtered_at_source": 0, "filtered_at_destination": 5,
            "pending_retry": 0, "failed_delivery": failed, "delivered": 50 - failed,
        }  # fmt: skip
    by_mapping = counts(api(client, partial, "pipeline", range="24h", mapping=orders.id))
    assert by_mapping["filtered_at_destination"] == 15
    assert (by_mapping["failed_delivery"], by_mapping["delivered"]) == (failed_orders, 40 - failed_orders)
    identify_counts = counts(api(client, partial, "pipeline", range="24h", mapping=identifies.id))
    assert (identify_counts["filtered_at_destination"], identify_counts["delivered"]) == (
        45,
        10 - failed_identifies,
    )
    assert counts(api(client, flaky, "pipeline", range="24h")) == {
        "received": 58, "failed_on_ingest": 3, "filtered_at_source": 0, "filtered_at_destination": 10,
        "pending_retry": 0, "failed_delivery": 0, "delivered": 45,
    }  # fmt: skip
    # Against the seeded previous day: received doubled; failed share moved from 2/29 to failed/58.
    day = api(client, partial, "pipeline", range="24h", mapping=orders.id)["steps"]
    assert (day[0]["previous_count"], day[0]["change"]) == (29, 100.0)
    assert day[5]["change"] == round(failed_orders * 100 / 58 - 2 * 100 / 29, 2)
    discards = api(client, partial, "discards", range="24h", step="failed_delivery")
    assert sum(r["count"] for r in discards) == failed + 0  # the seeded 2 are in the previous window
    assert api(client, partial, "discards", range="1h", step="failed_on_ingest")[0]["reason_code"] == (
        "no_user_anon_id"
    )

    # The page ends 5 minutes before now: these events are not on it yet.
    page = client.get(
        f"/w/{workspace.slug}/destinations/{partial.id}/?range=10m&metric=count"
    ).content.decode()
    assert card(page, "received").startswith("Successfully received 0 ")
    assert (
        "58 events arrived in the last 5 minutes: they show here once the 5-minute lookback has passed"
        in page
    )

    # Without the lookback, the page shows what the API shows, for several ranges and mappings.
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    url = f"/w/{workspace.slug}/destinations/{partial.id}/"
    for query in ("?range=10m&metric=count", "?range=24h&metric=count"):
        page = client.get(url + query).content.decode()
        assert card(page, "received").startswith("Successfully received 58 ")
        assert card(page, "failed_delivery").startswith(f"Failed delivery {failed} ")
        assert card(page, "delivered").startswith(f"Successful delivery {50 - failed} ")
    page = client.get(url + f"?range=24h&mapping={orders.id}").content.decode()
    assert card(page, "received") == "Successfully received 100.0% 58 events ▲ 100.0%"
    assert card(page, "filtered_at_destination").startswith("Filtered at destination 25.9% 15 events")
    assert f"{40 - failed_orders} events" in card(page, "delivered")

    page = client.get(url + "?range=1h&step=failed_delivery&metric=count").content.decode()
    codes = re.findall(r'<tr data-reason="([^"]*)">', page)
    listed = api(client, partial, "discards", range="1h", step="failed_delivery")
    assert codes == [r["reason_code"] for r in listed]
    first = codes[0]
    samples_page = client.get(
        url + f"?range=1h&step=failed_delivery&reason={first}&detail=samples"
    ).content.decode()
    api_samples = api(client, partial, "samples", range="1h", step="failed_delivery", reason=first)
    assert 0 < samples_page.count('<details class="sample"') == len(api_samples) <= 10
    assert api_samples[0]["message_id"] in samples_page and api_samples[0]["status"] in (400, 413, 422)
