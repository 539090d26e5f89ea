"""The steps every event passes through, in pipeline order, and the states an outcome can be in."""

from enum import StrEnum


class Step(StrEnum):
    RECEIVED = "received"
    FAILED_ON_INGEST = "failed_on_ingest"
    FILTERED_AT_SOURCE = "filtered_at_source"
    FILTERED_AT_DESTINATION = "filtered_at_destination"
    PENDING_RETRY = "pending_retry"
    FAILED_DELIVERY = "failed_delivery"
    DELIVERED = "delivered"
    # Not a pipeline step shown to operators: routed to a mapping, waiting for its first attempt.
    QUEUED = "queued"
    # Not a pipeline step either: a repeated messageId dropped at ingest, counted so operators see it.
    DUPLICATE = "duplicate"

    @property
    def label(self) -> str:
        return LABELS[self]


# The order of the pipeline view; QUEUED is in flight and shown with pending retry, not as a step.
PIPELINE = (
    Step.RECEIVED,
    Step.FAILED_ON_INGEST,
    Step.FILTERED_AT_SOURCE,
    Step.FILTERED_AT_DESTINATION,
    Step.PENDING_RETRY,
    Step.FAILED_DELIVERY,
    Step.DELIVERED,
)

LABELS = {
    Step.RECEIVED: "Successfully received",
    Step.FAILED_ON_INGEST: "Failed on ingest",
    Step.FILTERED_AT_SOURCE: "Filtered at source",
    Step.FILTERED_AT_DESTINATION: "Filtered at destination",
    Step.PENDING_RETRY: "Pending retry",
    Step.FAILED_DELIVERY: "Failed delivery",
    Step.DELIVERED: "Successful delivery",
    Step.QUEUED: "Awaiting delivery",
    Step.DUPLICATE: "Duplicate dropped",
}

# Steps where events leave the pipeline for a reason (they have a discard table).
DISCARD_STEPS = frozenset(
    {Step.FAILED_ON_INGEST, Step.FILTERED_AT_SOURCE, Step.FILTERED_AT_DESTINATION, Step.FAILED_DELIVERY}
)
# Steps recorded per source (no destination); the rest are recorded per destination and mapping.
SOURCE_STEPS = frozenset({Step.RECEIVED, Step.FAILED_ON_INGEST, Step.FILTERED_AT_SOURCE})
# Outcome states with delivery work still to do, in the order the open index's predicate names them
# (outbox renders them into its SQL).
OPEN_STEPS = (Step.QUEUED, Step.PENDING_RETRY)
# Outcome states that never change again.
FINAL_STEPS = frozenset({Step.FILTERED_AT_DESTINATION, Step.FAILED_DELIVERY, Step.DELIVERED})

# Message types of the tracking API.
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
