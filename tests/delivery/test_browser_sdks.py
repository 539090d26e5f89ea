"""A real browser SDK, @segment/analytics-next (from npm, bundled with esbuild at test time), on a page of
another origin in headless Chromium, sending to the tracking API of a live server: every event arrives,
once, with its fields, through the CORS preflight and the short paths the SDK uses."""

import time

import pytest
from django.db.models import Count

from delivery.models import Event
from tests.browser import open_page
from tests.factories import make_source, make_workspace
from tests.sdks.node import bundle

pytestmark = pytest.mark.browser

PAGE = "<!doctype html><html><head><script src='/segment.js'></script></head><body>shop</body></html>"

# What the page does, as an application would: 8 tracks, then identify, page, group and alias.
CALLS = """
async ([writeKey, apiHost]) => {
  const analytics = window.startSegment(writeKey, apiHost);
  for (let i = 0; i < 8; i++) {
    await analytics.track("Order Completed", { order: i, total: 10 * i, note: "<b>ok</b>" });
  }
  await analytics.identify("user-42", { plan: "pro" });
  await analytics.page("Docs", "Pricing");
  await analytics.group("acme", { seats: 12 });
  await analytics.alias("user-42-new", "user-42");
  return true;
}
"""


def wait_for_events(source, expected: int, timeout: float = 20) -> list[Event]:
    deadline = time.monotonic() + timeout
    while Event.objects.filter(source_id=source.id).count() < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return list(Event.objects.filter(source_id=source.id).order_by("id"))


def test_analytics_next_on_another_origin_delivers_every_event(
    chromium, live_server, httpserver, transactional_db
):
    source = make_source(make_workspace(), "Web shop")
    script = bundle("segment").read_bytes()
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    httpserver.expect_request("/segment.js").respond_with_data(script, content_type="text/javascript")
    api_host = live_server.url.removeprefix("http://") + "/v1"  # the SDK adds the scheme and its short paths
    shop = httpserver.url_for("/")
    assert shop.split("/")[2] != live_server.url.split("/")[2]  # another origin: the browser asks CORS

    with open_page(chromium) as page:
        tracking, failed = [], []
        page.on("request", lambda r: tracking.append((r.method, r.url)) if "/v1/" in r.url else None)
        # A response the page may not read (no CORS header) fails the request in the browser, and the SDK
        # would send the events again: every request must succeed.
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        page.goto(shop)
        assert page.evaluate(CALLS, [source.write_key, api_host]) is True
        events = wait_for_events(source, 12)

        page.wait_for_timeout(300)  # the last answers reach the page
    assert failed == []
    assert len(events) == 12
    assert dict(Event.objects.filter(source_id=source.id).values_list("type").annotate(n=Count("id"))) == {
        "track": 8, "identify": 1, "page": 1, "group": 1, "alias": 1,
    }  # fmt: skip
    tracks = [e.payload for e in events if e.type == "track"]
    assert sorted(t["properties"]["total"] for t in tracks) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert {t["properties"]["note"] for t in tracks} == {"<b>ok</b>"}
    assert all(t["context"]["library"]["name"] == "analytics.js" and t["anonymousId"] for t in tracks)
    by_type = {e.type: e.payload for e in events}
    assert (by_type["identify"]["userId"], by_type["identify"]["traits"]) == ("user-42", {"plan": "pro"})
    assert (by_type["page"]["name"], by_type["page"]["category"]) == ("Pricing", "Docs")
    assert by_type["group"]["groupId"] == "acme" and by_type["alias"]["previousId"] == "user-42"
    assert all("receivedAt" in e.payload and "writeKey" not in e.payload for e in events)
    # Through the short paths, each after its preflight.
    paths = {url.split("/v1/")[1] for _, url in tracking}
    assert {"t", "i", "p", "g", "a"} <= paths
