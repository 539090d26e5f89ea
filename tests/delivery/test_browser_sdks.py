"""Real browser SDKs, @segment/analytics-next and the RudderStack JS SDK (from npm, bundled with esbuild at
test time), on a page of another origin in headless Chromium, sending to the tracking API of a live
server: every event arrives, once, with its fields, through the CORS preflight and the paths each SDK
uses (analytics-next's short paths; RudderStack's /v1/<type> with its own headers, and its beacon)."""

import time

import pytest
from django.db.models import Count

from delivery.models import Event
from tests.browser import open_page
from tests.factories import make_source, make_workspace
from tests.sdks.node import bundle

pytestmark = pytest.mark.browser

PAGE = "<!doctype html><html><head><script src='/sdk.js'></script></head><body>shop</body></html>"

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


def wait_for_events(source, expected: int, timeout: float = 20, page=None) -> list[Event]:
    """Poll for the source's events. With a page, through the page and not time.sleep: open_page routes
    every request through a handler in this process, which runs only while Playwright is called, so a
    sleeping test would hold back every request the page makes meanwhile."""
    deadline = time.monotonic() + timeout
    while Event.objects.filter(source_id=source.id).count() < expected and time.monotonic() < deadline:
        if page is None:
            time.sleep(0.1)
        else:
            page.wait_for_timeout(100)
    return list(Event.objects.filter(source_id=source.id).order_by("id"))


def types_of(source) -> dict[str, int]:
    return dict(Event.objects.filter(source_id=source.id).values_list("type").annotate(n=Count("id")))


def shop_page(httpserver, live_server, sdk: str) -> str:
    """The URL of a page on another origin than the live server that loads the SDK's bundle."""
    script = bundle(sdk).read_bytes()
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    httpserver.expect_request("/sdk.js").respond_with_data(script, content_type="text/javascript")
    shop = httpserver.url_for("/")
    assert shop.split("/")[2] != live_server.url.split("/")[2]  # another origin: the browser asks CORS
    return shop


def test_analytics_next_on_another_origin_delivers_every_event(
    chromium, live_server, httpserver, transactional_db
):
    source = make_source(make_workspace(), "Web shop")
    shop = shop_page(httpserver, live_server, "segment")
    api_host = live_server.url.removeprefix("http://") + "/v1"  # the SDK adds the scheme and its short paths

    with open_page(chromium) as page:
        tracking, failed = [], []
        page.on("request", lambda r: tracking.append((r.method, r.url)) if "/v1/" in r.url else None)
        # A response the page may not read (no CORS header) fails the request in the browser, and the SDK
        # would send the events again: every request must succeed.
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        page.goto(shop)
        assert page.evaluate(CALLS, [source.write_key, api_host]) is True
        events = wait_for_events(source, 12, page=page)

        page.wait_for_timeout(300)  # the last answers reach the page
    assert failed == []
    assert len(events) == 12
    assert types_of(source) == {"track": 8, "identify": 1, "page": 1, "group": 1, "alias": 1}
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


# The same application on the RudderStack JS SDK: 5 tracks, then identify, page, group and alias.
RUDDERSTACK_CALLS = """
async ([writeKey, dataPlaneUrl, options]) => {
  const analytics = await window.startRudderStack(writeKey, dataPlaneUrl, options);
  for (let i = 0; i < 5; i++) analytics.track("Order Completed", { order: i, note: "<b>ok</b>" });
  analytics.identify("user-42", { plan: "pro" });
  analytics.page("Docs", "Pricing");
  analytics.group("acme", { seats: 12 });
  analytics.alias("user-42-new", "user-42");
  return true;
}
"""
# In beacon mode the SDK queues events and sends them with navigator.sendBeacon, as text/plain, to
# /beacon/v1/batch?writeKey=…, once its queue holds maxItems (here all 9 of the test's events).
BEACON = {"useBeacon": True, "beaconQueueOptions": {"maxItems": 9}}


@pytest.mark.parametrize("mode", ["xhr", "beacon"])
def test_the_rudderstack_sdk_on_another_origin_delivers_every_event(
    chromium, live_server, httpserver, transactional_db, mode
):
    source = make_source(make_workspace(), "Web shop")
    shop = shop_page(httpserver, live_server, "rudderstack")

    with open_page(chromium) as page:
        sent, failed, answers = [], [], []
        page.on("request", lambda r: sent.append((r.method, r.url, r.headers)) if "v1/" in r.url else None)
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        page.on("response", lambda r: answers.append((r.url, r.status)) if "v1/" in r.url else None)
        page.goto(shop)
        options = BEACON if mode == "beacon" else {}
        assert page.evaluate(RUDDERSTACK_CALLS, [source.write_key, live_server.url, options]) is True
        events = wait_for_events(source, 9, page=page)
        page.wait_for_timeout(300)
    assert failed == []
    assert len(events) == 9, (types_of(source), answers)
    assert types_of(source) == {"track": 5, "identify": 1, "page": 1, "group": 1, "alias": 1}
    tracks = [e.payload for e in events if e.type == "track"]
    assert sorted(t["properties"]["order"] for t in tracks) == [0, 1, 2, 3, 4]
    assert {t["properties"]["note"] for t in tracks} == {"<b>ok</b>"}
    assert all(t["context"]["library"]["name"] == "RudderLabs JavaScript SDK" for t in tracks)
    # Before identify the SDK sends userId "" with its anonymousId: accepted, as the spec allows.
    assert all(t["anonymousId"] and not t.get("userId") for t in tracks)
    by_type = {e.type: e.payload for e in events}
    assert by_type["identify"]["userId"] == "user-42"
    assert by_type["identify"]["context"]["traits"] == {"plan": "pro"}  # where this SDK puts traits
    assert (by_type["page"]["name"], by_type["page"]["category"]) == ("Pricing", "Docs")
    assert by_type["group"]["groupId"] == "acme" and by_type["alias"]["previousId"] == "user-42"
    assert all(e.timestamp and "receivedAt" in e.payload for e in events)
    posts = [(url, headers) for method, url, headers in sent if method == "POST"]
    if mode == "beacon":
        assert {url.split("?")[0].removeprefix(live_server.url) for url, _ in posts} == {"/beacon/v1/batch"}
        assert all(f"writeKey={source.write_key}" in url for url, _ in posts)
    else:  # one request per event, to /v1/<type>, with basic auth and the SDK's own headers
        assert len(posts) == 9
        assert {url.removeprefix(live_server.url) for url, _ in posts} == {
            "/v1/track", "/v1/identify", "/v1/page", "/v1/group", "/v1/alias",
        }  # fmt: skip
        assert all({"authorization", "anonymousid", "sentat"} <= set(headers) for _, headers in posts)
