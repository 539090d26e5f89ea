"""Query parameters that the dashboard pages and the figure API read alike: which of a destination's
mappings the `mapping` parameter names."""

from delivery.models import Destination, Mapping
from overview.figures.results import FigureError


def mapping_for(destination: Destination, raw: str | None) -> Mapping | None:
    """The mapping a `mapping` parameter names, which must be one of this destination's; blank is all."""
    raw = (raw or "").strip()
    if raw in ("", "all"):
        return None
    if not raw.isdigit():
        raise FigureError(f"Unknown mapping {raw!r}: give the id of one of this destination's mappings.")
    mapping = destination.mappings.filter(id=int(raw)).first()
    if mapping is None:
        raise FigureError(f"Unknown mapping {raw}: this destination has no mapping with that id.")
    return mapping
