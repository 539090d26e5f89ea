"""Bulk retries of a destination's failed deliveries, once the operator has fixed their cause.

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

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from delivery import delivering, wakeups
from delivery.models import Destination, Mapping
from delivery.steps import Step
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
    count: int  # failed deliveries that match: what a retry would queue again
    by_mapping: list[MappingCount]
    delivered_since: int  # deliveries that failed like this and have been delivered since: left alone
    pending_retry: int  # matching deliveries still waiting for retries of their own: left to them
    retention_start: dt.datetime  # events received before this are no longer kept
    reaches_before_retention: bool  # the filter's start is before it
    destination: Destination  # what they will be sent with now


def failed_only(match: events.UndeliveredFilter) -> events.UndeliveredFilter:
    return events.UndeliveredFilter(**{**asdict(match), "step": str(Step.FAILED_DELIVERY)})


def retention_start(now: dt.datetime | None = None) -> dt.datetime:
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    oldest = today - dt.timedelta(days=settings.EVENT_RETENTION_DAYS)
    return dt.datetime.combine(oldest, dt.time(), dt.UTC)


def preview(destination: Destination, match: events.UndeliveredFilter) -> Preview:
    any_open = events.UndeliveredFilter(**{**asdict(match), "step": ""})
    where, params = events.undelivered_where(destination.id, any_open)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.step, o.mapping_id, count(*) FROM delivery_outcome o WHERE {' AND '.join(where)}"
            " GROUP BY 1, 2",
            params,
        )
        counts = cursor.fetchall()
        cursor.execute(*_delivered_since(destination.id, failed_only(match)))
        delivered_since = cursor.fetchone()[0]
    failed = {mapping_id: n for step, mapping_id, n in counts if step == Step.FAILED_DELIVERY}
    mappings = {m.id: m for m in destination.mappings.all()}
    start = retention_start()
    return Preview(
        count=sum(failed.values()),
        by_mapping=[MappingCount(mappings.get(m), n) for m, n in sorted(failed.items(), key=_by_id)],
        delivered_since=delivered_since,
        pending_retry=sum(n for step, _, n in counts if step == Step.PENDING_RETRY),
        retention_start=start,
        reaches_before_retention=match.start is None or match.start < start,
        destination=destination,
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
    match = failed_only(match)
    match = events.UndeliveredFilter(**{**asdict(match), "end": min(match.end or now, now)})
    job = RetryJob.objects.create(
        workspace=destination.workspace,
        destination=destination,
        created_by=user,
        filters=_stored(match),
        total=preview(destination, match).count,
    )
    transaction.on_commit(lambda: _enqueue(job.id))
    return job


def _enqueue(job_id: int) -> None:
    from overview.tasks import run_retry_job

    run_retry_job.delay(job_id)


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
        pairs: set[tuple[int, int]] = set()
        with transaction.atomic():
            job = RetryJob.objects.select_for_update().filter(id=job_id, state=RetryJob.State.RUNNING).first()
            if job is None:
                return False  # done, cancelled, or deleted with its destination
            after = (job.after_received_at, job.after_outcome_id) if job.after_outcome_id else None
            rows = events.undelivered(job.destination_id, match_of(job), after, CHUNK)
            if not rows:
                job.state, job.finished_at = RetryJob.State.DONE, timezone.now()
                job.save(update_fields=["state", "finished_at", "updated_at"])
                return False
            queued = delivering.retry_failed(
                job.destination_id, [(r.received_at, r.outcome_id, r.event_id) for r in rows], job.id
            )
            job.queued += queued
            job.skipped += len(rows) - queued
            job.after_received_at, job.after_outcome_id = rows[-1].received_at, rows[-1].outcome_id
            job.save(
                update_fields=["queued", "skipped", "after_received_at", "after_outcome_id", "updated_at"]
            )
            pairs = {(job.destination_id, r.mapping_id) for r in rows if r.mapping_id is not None}
        if pairs:
            wakeups.request_delivery(sorted(pairs))
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
