"""Destination adapters, one module per kind, registered here by kind (the Destination.kind values)."""

from delivery.destinations.amplitude import AmplitudeAdapter
from delivery.destinations.base import Adapter, InvalidSettings
from delivery.destinations.braze import BrazeAdapter
from delivery.destinations.customerio import CustomerIOAdapter
from delivery.destinations.forwarder import ForwarderAdapter
from delivery.destinations.kinds import KIND_CHOICES
from delivery.destinations.mixpanel import MixpanelAdapter
from delivery.destinations.webhook import WebhookAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    adapter.kind: adapter
    for adapter in (
        WebhookAdapter,
        CustomerIOAdapter,
        AmplitudeAdapter,
        ForwarderAdapter,
        MixpanelAdapter,
        BrazeAdapter,
    )
}

# kinds.py stays import-light (models import it); the two lists must name the same kinds.
assert set(ADAPTERS) == {kind for kind, _ in KIND_CHOICES}, "KIND_CHOICES and ADAPTERS disagree"


def adapter_for(destination) -> Adapter:
    """The destination's adapter with its settings parsed; raises InvalidSettings if they are unusable."""
    try:
        adapter_class = ADAPTERS[destination.kind]
    except KeyError:
        raise InvalidSettings(f"no adapter for destination kind {destination.kind!r}") from None
    return adapter_class.from_destination(destination)


__all__ = ["ADAPTERS", "Adapter", "InvalidSettings", "adapter_for"]
