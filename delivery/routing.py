"""Routing (being written): source schema controls, destination filters, mapping triggers."""


def route_events(event_ids: list[int]) -> None:
    raise NotImplementedError("routing is built by the ingestion and routing issue")


def sweep_unrouted() -> None:
    return None
