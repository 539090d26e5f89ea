"""Where an event stands at a destination as a whole, from where it stands at each mapping it reached.

An event fans out to every mapping whose trigger matches; each (event, mapping) pair has its own
outcome. The "all mappings" view counts each event once, in one step, recorded as a rollup row with
mapping NULL whose step is the aggregate of the pairs (mappings that filtered the event do not count):

- failed delivery if any reached mapping finally failed (reason: that mapping's, lowest mapping id first);
- else pending retry if any is pending a retry (its reason, lowest mapping id first);
- else awaiting delivery (queued) if any is still queued;
- else delivered (every reached mapping delivered it).

Routing records the first aggregate (queued), delivery moves it as the pairs settle (`delivering.record`),
and migration 0006 computed it for outcomes stored before it existed.
"""

from collections.abc import Iterable

from delivery.steps import Step

# The aggregate's step is the first of these that any reached mapping is at.
PRECEDENCE = (Step.FAILED_DELIVERY, Step.PENDING_RETRY, Step.QUEUED, Step.DELIVERED)
RULE = (
    "Under all mappings each event is counted once: failed delivery if any mapping it reached finally"
    " failed; else pending retry if any is waiting for a retry; else awaiting delivery if any has not been"
    " attempted yet; else delivered (every mapping it reached delivered it)."
)

State = tuple[Step, str]  # (step, reason code)


def aggregate(states: Iterable[tuple[int, Step | str, str]]) -> State:
    """The event's step and reason at the destination from (mapping id, step, reason code) of each
    mapping it reached: the first step of PRECEDENCE any is at, with the lowest such mapping's reason."""
    best: tuple[int, int, str] | None = None
    for mapping_id, step, reason_code in states:
        rank = PRECEDENCE.index(Step(step))
        if best is None or (rank, mapping_id) < best[:2]:
            best = (rank, mapping_id, reason_code)
    if best is None:
        raise ValueError("an event that reached no mapping has no aggregate delivery step")
    return PRECEDENCE[best[0]], best[2]
