"""The demo: a workspace wired to the sandbox destination, and a stream of realistic traffic.

Everything the demo shows is recorded by the real pipeline: the traffic goes over HTTP to the
tracking API, the worker routes and delivers it to the sandbox's real HTTP server.
"""

import base64
import contextlib
import random
import secrets
import time
import uuid
from dataclasses import dataclass

import httpx
from django.contrib.auth import get_user_model
from django.db import transaction

from delivery.models import Destination, Mapping, Membership, Source, Workspace
from overview.models import AlertRule

DEMO_USER = "operator"

# The checkout app's tracking plan: planned events and what their properties must look like.
TRACKING_PLAN = {
    "Order Completed": {
        "type": "object",
        "properties": {
            "properties": {
                "type": "object",
                "required": ["order_id", "total"],
                "properties": {"total": {"type": "number"}, "order_id": {"type": "string"}},
            }
        },
    },
    "Product Viewed": {"type": "object"},
    "Cart Viewed": {"type": "object"},
}


@dataclass(frozen=True)
class DemoSetup:
    workspace: Workspace
    username: str
    password: str
    write_keys: dict[str, str]


@transaction.atomic
def set_up(sandbox_url: str) -> DemoSetup:
    """Create (or refresh) the demo workspace; returns the login and the sources' write keys."""
    workspace, _ = Workspace.objects.get_or_create(slug="acme", defaults={"name": "Acme Shop"})
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"email": "ops@acme.test"})
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    user.is_staff = user.is_superuser = True  # the demo's operator may also browse the admin
    user.save()
    Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": Membership.Role.OWNER})

    web, _ = Source.objects.get_or_create(workspace=workspace, name="Storefront (web)")
    mobile, _ = Source.objects.get_or_create(
        workspace=workspace,
        name="Checkout app (iOS)",
        defaults={
            "tracking_plan": TRACKING_PLAN,
            "block_unplanned_events": True,
            "block_schema_violations": True,
            "blocked_event_types": ["alias"],
        },
    )
    sources = [web, mobile]

    warehouse = _destination(
        workspace, "Data warehouse", "webhook", f"{sandbox_url}/healthy/webhook", sources,
        filters=[{"action": "drop", "conditions": [{"field": "event", "op": "eq", "value": "Heartbeat"}]}],
    )  # fmt: skip
    _mapping(warehouse, "All events", {})
    _mapping(warehouse, "Orders", {"type": ["track"], "event": ["Order Completed"]})

    customerio = _destination(
        workspace, "Customer.io", "customerio", f"{sandbox_url}/partial", sources,
        credentials={"site_id": "demo-site", "api_key": "demo-api-key"},
        consent_categories=["marketing"], settings={"region": "us"},
    )  # fmt: skip
    _mapping(customerio, "Identify people", {"type": ["identify"]})
    _mapping(customerio, "Track events", {"type": ["track"]})
    _mapping(customerio, "Page views", {"type": ["page", "screen"]}, enabled=False)

    # One destination of each other kind, each answering in its own API's dialect (see SANDBOX_PROFILES).
    mixpanel = _destination(
        workspace, "Mixpanel", "mixpanel", f"{sandbox_url}/mixpanel", sources,
        credentials={"username": "demo-service-account", "secret": "demo-secret"},
        settings={"project_id": "314159", "region": "US"},
    )  # fmt: skip
    _mapping(mixpanel, "Product events", {"type": ["track", "page", "screen"]})
    amplitude = _destination(
        workspace, "Amplitude", "amplitude", f"{sandbox_url}/amplitude", sources,
        credentials={"api_key": "demo-amplitude-key"}, settings={"region": "US"},
    )  # fmt: skip
    _mapping(amplitude, "Events and users", {"type": ["track", "identify", "page", "screen"]})
    braze = _destination(
        workspace, "Braze", "braze", f"{sandbox_url}/braze", sources,
        credentials={"api_key": "demo-braze-key"}, batch_size=75, rate_limit=25,
    )  # fmt: skip
    _mapping(braze, "Profiles and events", {"type": ["identify", "track"]})
    collector = _destination(
        workspace, "EU collector", "tracking_api", f"{sandbox_url}/collector", sources,
        credentials={"write_key": "demo-eu-write-key"}, batch_size=50,
    )  # fmt: skip
    _mapping(collector, "Everything", {})

    partner = _destination(workspace, "Partner API", "webhook", f"{sandbox_url}/partner/webhook", sources)
    _mapping(partner, "Orders", {"type": ["track"], "event": ["Order Completed", "Order Refunded"]})
    _mapping(partner, "Sign-ups", {"type": ["track"], "event": ["Signed Up"]})

    # Alerts to look at: the flaky partner dips below 99 % now and then; the web source's volume is watched.
    AlertRule.objects.get_or_create(
        workspace=workspace, kind=AlertRule.Kind.DELIVERY_RATE, destination=partner,
        defaults={"threshold": 99, "min_volume": 50, "channels": ["in_app"]},
    )  # fmt: skip
    AlertRule.objects.get_or_create(
        workspace=workspace, kind=AlertRule.Kind.SOURCE_VOLUME, source=web,
        defaults={"threshold": 50, "channels": ["in_app"]},
    )  # fmt: skip
    return DemoSetup(workspace, DEMO_USER, password, {"web": web.write_key, "mobile": mobile.write_key})


def _destination(workspace, name, kind, endpoint, sources, credentials=None, **fields) -> Destination:
    destination, _ = Destination.objects.update_or_create(
        workspace=workspace, name=name, defaults={"kind": kind, "endpoint": endpoint, **fields}
    )
    destination.credentials = credentials or {}
    destination.save()
    destination.sources.set(sources)
    return destination


def _mapping(destination: Destination, name: str, trigger: dict, enabled: bool = True) -> Mapping:
    mapping, _ = Mapping.objects.update_or_create(
        destination=destination, name=name, defaults={"trigger": trigger, "enabled": enabled}
    )
    return mapping


# The partner API rate-limits now and then and has bad moments: the sandbox's flaky profile.
PARTNER_PROFILE = {
    "profile": "flaky",
    "settings": {
        "cycle": ["ok", "ok", "rate_limited", "ok", "ok", "500", "ok", "ok", "503", "ok", "slow", "ok"],
        "retry_after": 5,
        "slow_seconds": 12,
    },
}


# How the other demo destinations behave: Mixpanel and Braze reject a few events in their own partial-failure
# answers, Amplitude now and then rejects a request because of some of its events (the rest are sent again)
# or throttles some users, and the collector refuses requests over 20 events (413: the batch is split).
SANDBOX_PROFILES = {
    "partner": PARTNER_PROFILE,
    "mixpanel": {"profile": "partial", "settings": {"reject_share": 0.05}},
    "braze": {"profile": "partial", "settings": {"reject_share": 0.05}},
    "amplitude": {
        "profile": "flaky",
        "settings": {"cycle": ["ok", "ok", "partial", "ok", "ok", "rate_limited"], "reject_share": 0.1},
    },
    "collector": {"profile": "over_size", "settings": {"max_items": 20}},
}


def configure_sandbox(sandbox_url: str) -> None:
    for slot, profile in SANDBOX_PROFILES.items():
        httpx.put(f"{sandbox_url}/_control/{slot}", json=profile, timeout=5).raise_for_status()


TRACKS = [
    (
        "Product Viewed",
        lambda r: {"product_id": f"sku-{r.randint(1, 400)}", "price": round(r.uniform(5, 200), 2)},
    ),
    ("Cart Viewed", lambda r: {"items": r.randint(1, 6)}),
    ("Order Completed", lambda r: {"order_id": uuid.uuid4().hex[:10], "total": round(r.uniform(20, 500), 2)}),
    ("Signed Up", lambda r: {"plan": r.choice(["free", "pro", "team"])}),
    ("Order Refunded", lambda r: {"order_id": uuid.uuid4().hex[:10]}),
    ("Coupon Applied", lambda r: {"code": r.choice(["WELCOME10", "SPRING"])}),
    ("Heartbeat", lambda r: {}),
]
APP_VERSIONS = ["4.2.0", "4.3.1", "5.0.0-beta"]


def make_message(r: random.Random, mobile: bool) -> dict:
    """One message as an analytics client would send it, now and then malformed or filtered."""
    user = f"user-{r.randint(1, 5000)}"
    context = {"library": {"name": "demo-traffic", "version": "1.0"}}
    if mobile:
        context["app"] = {"version": r.choice(APP_VERSIONS)}
    if r.random() < 0.3:
        context["consent"] = {"categoryPreferences": {"marketing": r.random() < 0.7, "analytics": True}}
    message: dict = {"messageId": str(uuid.uuid4()), "userId": user, "context": context}
    kind = r.choices(["track", "identify", "page", "screen", "alias"], weights=[70, 12, 12, 5, 1])[0]
    if kind == "page" and mobile:
        kind = "screen"
    message["type"] = kind
    if kind == "track":
        name, properties = r.choice(TRACKS)
        message.update(event=name, properties=properties(r))
    elif kind == "identify":
        message["traits"] = {"email": f"{user}@example.com", "plan": r.choice(["free", "pro"])}
    elif kind in {"page", "screen"}:
        message["name"] = r.choice(["Home", "Product", "Checkout", "Account"])
    elif kind == "alias":
        message["previousId"] = f"anon-{r.randint(1, 999)}"
    _maybe_break(r, message)
    return message


def _maybe_break(r: random.Random, message: dict) -> None:
    """A few percent of real traffic is malformed or opted out: keep that in the demo."""
    roll = r.random()
    if roll < 0.02:
        message.pop("userId")  # no_user_anon_id
    elif roll < 0.03 and message["type"] == "track":
        message["properties"] = "not-an-object"  # properties_not_object
    elif roll < 0.04 and message["type"] == "track":
        message.pop("event")  # event_not_defined
    elif roll < 0.07:
        message["integrations"] = {"All": False, "Data warehouse": True}


def run_traffic(
    base_url: str, write_keys: dict[str, str], rate: float = 40.0, seed: int | None = None
) -> None:
    """Send about `rate` events a second, in small batches, until interrupted."""
    r = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            started = time.monotonic()
            for name, key in write_keys.items():
                batch = [make_message(r, mobile=name == "mobile") for _ in range(max(1, int(rate / 4)))]
                auth = base64.b64encode(f"{key}:".encode()).decode()
                # The web server may be restarting; the next round tries again.
                with contextlib.suppress(httpx.TransportError):
                    headers = {"Authorization": f"Basic {auth}"}
                    client.post("/v1/batch", json={"batch": batch}, headers=headers)
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
