"""The pipeline's Prometheus metrics, counted where the work is recorded (`prometheus_client`).

Web and worker processes each write their own files under PROMETHEUS_MULTIPROC_DIR (multiprocess mode,
set by overview.settings before anything imports prometheus_client); `/metrics` on the web server sums
every process of its host (overview.ops). Labels stay low-cardinality: step, source and destination ids,
an outcome; never event names, user ids or payloads.

- `delivery_events_total{step, source, destination}`: events that reached a step, counted from the
  same rollup moves the dashboard reads, once their transaction has committed: the source's steps
  (received, failed_on_ingest, filtered_at_source; destination "") and each destination's
  (filtered_at_destination, delivered, failed_delivery: the event as a whole, over its mappings).
  An event retried in bulk after it failed counts again where it ends.
- `delivery_request_seconds{destination}`: each batch request's time, answer included.
- `delivery_alert_evaluations_total{kind, outcome}`: alert rules measured, and whether they breached.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from prometheus_client import Counter, Histogram

from delivery.steps import Step

EVENTS = Counter(
    "delivery_events_total",
    "Events that reached a pipeline step, per source and destination (the dashboard's steps).",
    ["step", "source", "destination"],
)
REQUEST_SECONDS = Histogram(
    "delivery_request_seconds",
    "Time of one delivery request to a destination, answer included (or until it failed).",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERT_EVALUATIONS = Counter(
    "delivery_alert_evaluations_total", "Alert rules evaluated, by kind and outcome.", ["kind", "outcome"]
)

SOURCE_STEPS = frozenset(str(s) for s in (Step.RECEIVED, Step.FAILED_ON_INGEST, Step.FILTERED_AT_SOURCE))
DESTINATION_STEPS = frozenset(
    str(s) for s in (Step.FILTERED_AT_DESTINATION, Step.DELIVERED, Step.FAILED_DELIVERY)
)


def count_moves(counts: Mapping[tuple, int]) -> None:
    """The arrivals in a batch's rollup deltas (keys as `recording.Tally` makes them: minute, workspace,
    source, destination, mapping, step, ...), counted when the transaction commits."""
    arrivals: dict[tuple[str, str, str], int] = {}
    for key, n in counts.items():
        if n <= 0:
            continue
        _, _, source, destination, mapping, step = key[:6]
        if destination is None and step in SOURCE_STEPS:
            labels = (step, str(source), "")
        elif destination is not None and mapping is None and step in DESTINATION_STEPS:
            labels = (step, str(source), str(destination))
        else:
            continue
        arrivals[labels] = arrivals.get(labels, 0) + n
    if arrivals:
        transaction.on_commit(lambda: _count(arrivals))


def _count(arrivals: dict[tuple[str, str, str], int]) -> None:
    for (step, source, destination), n in arrivals.items():
        EVENTS.labels(step, source, destination).inc(n)


def observe_request(destination_id: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(str(destination_id)).observe(seconds)


def count_alert_evaluation(kind: str, breached: bool) -> None:
    ALERT_EVALUATIONS.labels(kind, "breached" if breached else "ok").inc()
