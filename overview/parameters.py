"""Query parameters that the dashboard pages and the figure API read alike: which of a destination's
mappings the `mapping` parameter names, and text parameters PostgreSQL can compare (no NUL)."""

from delivery.models import Destination, Mapping
from overview.figures.results import FigureError

# Ids are bigint columns: a larger number names no row, and PostgreSQL would refuse to compare it.
MAX_ID = 2**63 - 1


def mapping_for(destination: Destination, raw: str | None) -> Mapping | None:
    """The mapping a `mapping` parameter names, which must be one of this destination's; blank is all."""
    raw = (raw or "").strip()
    if raw in ("", "all"):
        return None
    # str.isdigit() also passes "²" and other Unicode digits, which int() refuses.
    if not (raw.isascii() and raw.isdigit()):
        raise FigureError(f"Unknown mapping {raw!r}: give the id of one of this destination's mappings.")
    mapping = destination.mappings.filter(id=int(raw)).first() if int(raw) <= MAX_ID else None
    if mapping is None:
        raise FigureError(f"Unknown mapping {raw}: this destination has no mapping with that id.")
    return mapping


def text(value: str | None, name: str) -> str | None:
    """A text parameter as given (None when absent); one holding a NUL character is refused, since
    PostgreSQL's text cannot hold one and no stored value has one."""
    if value is not None and "\x00" in value:
        raise FigureError(f"The {name} parameter contains a NUL character (%00), which no {name} has.")
    return value
