"""What the adapter tests (Customer.io, Mixpanel, Amplitude, Braze, the collector) share: deliveries to
this machine's servers allowed, each event's idempotency key as delivery gives it, and one real exchange
with a server. A module importing `local_destinations` gets it for every test (it is autouse)."""

import datetime as dt

import pytest

from delivery import http
from delivery.destinations import Adapter
from delivery.idempotency import event_key


@pytest.fixture(autouse=True)
def local_destinations(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    http.reset_client()


def key(i: int) -> str:
    """Event i's idempotency key, as delivery gives it."""
    return event_key(1, f"msg-{i}", 2, 3, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def exchange(adapter: Adapter, batch: list) -> list:
    """Post the items as the adapter builds the request; its reading of the real answer."""
    keys = [key(i) for i in range(len(batch))]
    return adapter.parse_response(http.post(adapter.build_request(batch, keys)), len(batch))
