"""Batching (being written): groups due outcomes per destination and mapping and delivers them."""


def deliver_due(destination_id: int, mapping_id: int | None) -> None:
    raise NotImplementedError("delivery is built by the delivery engine issue")


def flush_due() -> None:
    return None


def sweep_lost() -> None:
    return None


def schedule(pairs: set[tuple[int, int]]) -> None:
    """Called by routing after commit with the (destination_id, mapping_id) pairs that got queued work."""
    return None
