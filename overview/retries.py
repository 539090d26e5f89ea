"""Bulk retries of a destination's failed deliveries, and re-routes of the events it filtered, once the
operator has fixed their cause. A filter with step filtered_at_destination asks for a re-route: each
matching event (filtered as a whole) is decided again with the destination's current gate, mappings and
triggers (`delivery.routing.reroute`), and what now reaches a mapping is delivered.

- `preview(destination, match)` is the dry run: how many failed deliveries match (the retry's total, per
  mapping), how many of the events that failed like this have been delivered since (left alone), how
  many still wait for retries of their own (left to them), where retention starts if the filter reaches
  before it, and the destination and mappings they will be sent with now. It changes nothing.
- `start(destination, match, user)` records a RetryJob and hands it to the `run_retry_job` task. `run`
  goes through the job's failed deliveries newest first by keyset, CHUNK at a time; each chunk is one
  transaction (`delivery.delivering.retry_failed`) that puts the outcomes back in the outbox, moves their
  counts, and advances the job's position and counts with them. An outcome no longer failed when its
  chunk comes (another job took it, or it was delivered) is skipped, so two jobs never send an event
  twice. The normal delivery path then sends them, with the destination's full set of retries.
- `cancel(job)` stops it before its next chunk: the failed deliveries it had not reached stay failed,
  counted there.
- `progress(job)`: where the events it queued are now (delivered, failed again, still waiting).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from delivery import delivering, routing, wakeups
from delivery.models import Destination, Mapping
from delivery.steps import Step
from overview.api.events import undelivered_filter
from overview.figures import events
from overview.models import RetryJob

CHUNK = 500  # outcomes a transaction queues again
TASK_BUDGET_SECONDS = 10.0  # then the task hands over to a fresh one, so a big job does not hold a worker
STALLED_AFTER = dt.timedelta(minutes=2)  # a running job this long without a step lost its task


@dataclass(frozen=True)
class MappingCount:
    mapping: Mapping | None
    count: int


@dataclass(frozen=True)
class Preview:
    kind: str  # RetryJob.Kind
    count: int  # failed deliveries (filtered events) that match: what the job would take
    by_mapping: list[MappingCount]  # a retry's count per mapping
    by_reason: list[tuple[str, int]]  # a re-route's count per reason
    delivered_since: int  # deliveries that failed like this and have been delivered since: left alone
    pending_retry: int  # matching deliveries still waiting for retries of their own: left to them
    would_route: int | None  # a re-route: of the `evaluated` newest, how many would reach a mapping now
    evaluated: int
    retention_start: dt.datetime  # events received before this are no longer kept
    reaches_before_retention: bool  # the filter's start is before it
    destination: Destination  # what they will be sent with now


FILTERED = str(Step.FILTERED_AT_DESTINATION)
EVALUATED = 10_000  # a re-route's dry run decides again at most this many of the events, newest first


def failed_only(match: events.UndeliveredFilter) -> events.UndeliveredFilter:
    return events.UndeliveredFilter(**{**asdict(match), "step": str(Step.FAILED_DELIVERY)})


def kind_of(match: events.UndeliveredFilter) -> str:
    return RetryJob.Kind.REROUTE if match.step == FILTERED else RetryJob.Kind.RETRY


# The parameters a retry's or re-route's filter is given by (query string, form or JSON body)
FILTER_PARAMS = (
    "step",
    "mapping",
    "reason",
    "status",
    "error_type",
    "event_name",
    "event",
    "range",
    "start",
    "end",
)


def parse(destination: Destination, params) -> events.UndeliveredFilter:
    """A retry's filter (the undelivered list's), or a re-route's (step filtered_at_destination, with a
    reason, event name, event or time range); a bad one is a ValueError whose message says which."""
    step = (params.get("step") or "").strip()
    if step not in ("", str(Step.FAILED_DELIVERY), FILTERED):
        raise ValueError(
            f"step must be failed_delivery (a retry) or {FILTERED} (a re-route), not {step[:40]!r}."
        )
    match = undelivered_filter(destination, {k: v for k, v in params.items() if k != "step"})
    if step != FILTERED:
        return failed_only(match)
    if match.mapping_id is not None or match.status is not None or match.error_type:
        raise ValueError("A re-route takes each event as a whole: give no mapping, status or error type.")
    return events.UndeliveredFilter(**{**asdict(match), "step": FILTERED})


# A re-route's filter on the events' all-mappings rows at the destination
FILTERED_COLUMNS = {
    name: events.FILTER_COLUMNS[name] for name in ("reason_code", "event_name", "event_id", "received_at")
}


def filtered_events(
    destination_id: int, match: events.UndeliveredFilter, after: tuple | None, limit: int
) -> list[tuple[dt.datetime, int, int]]:
    """The destination's events it filtered as a whole, newest first after `after`: (received_at,
    outcome id, event id), by keyset on their own index."""
    where, params = _filtered_where(destination_id, match)
    if after is not None:
        where.append("(o.received_at, o.id) < (%s, %s)")
        params += list(after)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.received_at, o.id, o.event_id FROM delivery_outcome o WHERE {' AND '.join(where)}"
            " ORDER BY o.received_at DESC, o.id DESC LIMIT %s",
            [*params, limit],
        )
        return cursor.fetchall()


def _filtered_where(destination_id: int, match: events.UndeliveredFilter) -> tuple[list, list]:
    """The conditions (on their partial index's predicate) of the destination's events it filtered as a
    whole that match."""
    where, params = events.filter_conditions(match, FILTERED_COLUMNS)
    return (
        ["o.destination_id = %s", f"o.step = '{FILTERED}'", "o.mapping_id IS NULL", *where],
        [destination_id, *params],
    )


def retention_start(now: dt.datetime | None = None) -> dt.datetime:
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    oldest = today - dt.timedelta(days=settings.EVENT_RETENTION_DAYS)
    return dt.datetime.combine(oldest, dt.time(), dt.UTC)


def preview(destination: Destination, match: events.UndeliveredFilter, counts_only: bool = False) -> Preview:
    """The dry run; `counts_only` skips what only the operator reads (delivered since, would route)."""
    start = retention_start()
    common = {
        "retention_start": start,
        "reaches_before_retention": match.start is None or match.start < start,
        "destination": destination,
    }
    if kind_of(match) == RetryJob.Kind.REROUTE:
        return _reroute_preview(destination, match, common, counts_only)
    any_open = events.UndeliveredFilter(**{**asdict(match), "step": ""})
    where, params = events.undelivered_where(destination.id, any_open)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.step, o.mapping_id, count(*) FROM delivery_outcome o WHERE {' AND '.join(where)}"
            " GROUP BY 1, 2",
            params,
        )
        counts = cursor.fetchall()
        delivered_since = 0
        if not counts_only:
            cursor.execute(*_delivered_since(destination.id, failed_only(match)))
            delivered_since = cursor.fetchone()[0]
    failed = {mapping_id: n for step, mapping_id, n in counts if step == Step.FAILED_DELIVERY}
    mappings = {m.id: m for m in destination.mappings.all()}
    return Preview(
        kind=RetryJob.Kind.RETRY,
        count=sum(failed.values()),
        by_mapping=[MappingCount(mappings.get(m), n) for m, n in sorted(failed.items(), key=_by_id)],
        by_reason=[],
        delivered_since=delivered_since,
        pending_retry=sum(n for step, _, n in counts if step == Step.PENDING_RETRY),
        would_route=None,
        evaluated=0,
        **common,
    )


def _reroute_preview(
    destination: Destination, match: events.UndeliveredFilter, common: dict, counts_only: bool
) -> Preview:
    where, params = _filtered_where(destination.id, match)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.reason_code, count(*) FROM delivery_outcome o WHERE {' AND '.join(where)}"
            " GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
        by_reason = cursor.fetchall()
    newest = [] if counts_only else filtered_events(destination.id, match, None, EVALUATED)
    return Preview(
        kind=RetryJob.Kind.REROUTE,
        count=sum(n for _, n in by_reason),
        by_mapping=[],
        by_reason=by_reason,
        delivered_since=0,
        pending_retry=0,
        would_route=None
        if counts_only
        else routing.would_reach(destination.id, [(r[0], r[2]) for r in newest]),
        evaluated=len(newest),
        **common,
    )


def _by_id(item: tuple) -> int:
    return item[0] or 0


# The filter's fields on an attempt joined to its outcome: how it failed is the attempt's
ATTEMPT_COLUMNS = {
    **events.FILTER_COLUMNS,
    **{name: f"a.{name}" for name in ("mapping_id", "reason_code", "status", "error_type", "event_id")},
    "step": "a.step",
    "received_at": "a.received_at",
}


def _delivered_since(destination_id: int, match: events.UndeliveredFilter) -> tuple[str, list]:
    """Deliveries (event x mapping) with an attempt that failed as the filter says, delivered since."""
    where, params = events.filter_conditions(match, ATTEMPT_COLUMNS)
    sql = (
        "SELECT count(DISTINCT (a.received_at, a.event_id, a.mapping_id)) FROM delivery_attempt a"
        " JOIN delivery_outcome o ON o.received_at = a.received_at AND o.id = a.outcome_id"
        " WHERE a.destination_id = %s AND o.step = 'delivered' AND " + " AND ".join(where)
    )
    return sql, [destination_id, *params]


# --- the job ------------------------------------------------------------------------------------------


def start(destination: Destination, match: events.UndeliveredFilter, user) -> RetryJob:
    """Record the job (its total is the dry run's count now) and start it after commit."""
    now = timezone.now()
    # Only what had been received when the operator asked: a later failure is not in the count shown.
    match = events.UndeliveredFilter(**{**asdict(match), "end": min(match.end or now, now)})
    job = RetryJob.objects.create(
        workspace=destination.workspace,
        destination=destination,
        kind=kind_of(match),
        created_by=user,
        filters=_stored(match),
        total=preview(destination, match, counts_only=True).count,
    )
    # After the commit; with the broker unreachable it only logs, and beat resumes the job later.
    wakeups.after_commit(partial(_enqueue, job.id))
    return job


def _enqueue(job_id: int) -> None:
    current_app.send_task(RUN_TASK, args=[job_id])  # by name: the task module imports this one


RUN_TASK = "overview.tasks.run_retry_job"


def match_of(job: RetryJob) -> events.UndeliveredFilter:
    values = dict(job.filters)
    for name in ("start", "end"):
        if values.get(name):
            values[name] = dt.datetime.fromisoformat(values[name])
    return events.UndeliveredFilter(**values)


def _stored(match: events.UndeliveredFilter) -> dict:
    values = asdict(match)
    for name in ("start", "end"):
        if values[name] is not None:
            values[name] = values[name].isoformat()
    return values


def run(job_id: int, budget: float = TASK_BUDGET_SECONDS, chunks: int | None = None) -> bool:
    """Queue the job's failed deliveries again, a chunk a transaction, for up to `budget` seconds (or
    `chunks` chunks); returns whether some are left (the caller runs it again)."""
    deadline = time.monotonic() + budget
    done = 0
    while time.monotonic() < deadline and (chunks is None or done < chunks):
        with transaction.atomic():
            job = RetryJob.objects.select_for_update().filter(id=job_id, state=RetryJob.State.RUNNING).first()
            if job is None:
                return False  # done, cancelled, or deleted with its destination
            after = (job.after_received_at, job.after_outcome_id) if job.after_outcome_id else None
            if job.kind == RetryJob.Kind.REROUTE:
                rows = filtered_events(job.destination_id, match_of(job), after, CHUNK)
                queued, skipped = routing.reroute(job.destination_id, [(r[0], r[2]) for r in rows], job.id)
            else:
                found = events.undelivered(job.destination_id, match_of(job), after, CHUNK)
                rows = [(r.received_at, r.outcome_id, r.event_id) for r in found]
                queued = delivering.retry_failed(job.destination_id, rows, job.id)
                skipped = len(rows) - queued
                pairs = sorted({(job.destination_id, r.mapping_id) for r in found if r.mapping_id})
                if pairs:  # after the commit; an unreachable broker only logs (the sweeper finds due work)
                    wakeups.after_commit(partial(wakeups.request_delivery, pairs))
            if not rows:
                job.state, job.finished_at = RetryJob.State.DONE, timezone.now()
                job.save(update_fields=["state", "finished_at", "updated_at"])
                return False
            job.queued += queued
            job.skipped += skipped
            job.after_received_at, job.after_outcome_id = rows[-1][0], rows[-1][1]
            job.save(
                update_fields=["queued", "skipped", "after_received_at", "after_outcome_id", "updated_at"]
            )
        done += 1
    return True


def cancel(job: RetryJob) -> bool:
    """Stop the job before its next chunk (waits for the one in progress); False if it was not running."""
    return bool(
        RetryJob.objects.filter(id=job.id, state=RetryJob.State.RUNNING).update(
            state=RetryJob.State.CANCELLED, finished_at=timezone.now(), updated_at=timezone.now()
        )
    )


def stalled_job_ids(now: dt.datetime | None = None) -> list[int]:
    """Running jobs whose task was lost (a worker stopped): beat starts them again."""
    since = (now or timezone.now()) - STALLED_AFTER
    return list(
        RetryJob.objects.filter(state=RetryJob.State.RUNNING, updated_at__lt=since).values_list(
            "id", flat=True
        )
    )


@dataclass(frozen=True)
class Progress:
    delivered: int  # of the events it queued, delivered since
    failed: int  # failed again
    waiting: int  # queued or pending retry


def progress(job: RetryJob) -> Progress:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT step, count(*) FROM delivery_outcome WHERE retry_job_id = %s AND destination_id = %s"
            " GROUP BY step",
            [job.id, job.destination_id],
        )
        steps = dict(cursor.fetchall())
    return Progress(
        delivered=steps.get(Step.DELIVERED, 0),
        failed=steps.get(Step.FAILED_DELIVERY, 0),
        waiting=steps.get(Step.QUEUED, 0) + steps.get(Step.PENDING_RETRY, 0),
    )
