"""Writes the pipeline's counts and samples: a statement or two per batch, in the caller's transaction.

Every step change of every event goes through `Tally` (rollup deltas, pre-summed in Python and
upserted with sorted keys so concurrent batches never deadlock) and, for examples operators can
inspect, `SampleBatch` (the newest few per key and 10-minute bucket).
"""

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction

from delivery import metrics, redaction, rollups
from delivery.models import Destination
from delivery.reasons import Reason
from delivery.sql import execute_prepared
from delivery.steps import Step

SAMPLES_PER_BUCKET = 10
SAMPLE_BUCKET = dt.timedelta(minutes=10)


def minute_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0)


@dataclass(frozen=True)
class Where:
    """The dimensions a count or sample is recorded under (everything but time and step)."""

    workspace_id: int
    source_id: int
    destination_id: int | None = None
    mapping_id: int | None = None
    event_type: str = ""
    event_name: str = ""
    app_version: str = ""


# Tally keys are the wide tables' keys, in rollups' column order; the step tables' keys are their prefix.
STEP_KEY_LENGTH = len(rollups.ROLLUP_STEPS.key_columns)


def _sort_key(key: tuple) -> tuple:
    return tuple(-1 if part is None else part for part in key)


class Tally:
    """Rollup deltas for one batch: `add(received_at, where, step, reason, n)`, then `write()` once."""

    def __init__(self) -> None:
        self.counts: Counter[tuple] = Counter()
        self._minutes: dict[dt.datetime, dt.datetime] = {}  # a batch's events share a few received times

    def add(
        self, received_at: dt.datetime, where: Where, step: Step, reason_code: Reason | str = "", n: int = 1
    ) -> None:
        if (minute := self._minutes.get(received_at)) is None:
            minute = self._minutes[received_at] = minute_of(received_at)
        self.counts[
            (
                minute,
                where.workspace_id,
                where.source_id,
                where.destination_id,
                where.mapping_id,
                str(step),
                reason_code,
                where.event_type,
                where.event_name,
                where.app_version,
            )
        ] += n

    def move(
        self, received_at: dt.datetime, where: Where, old: tuple[Step, str], new: tuple[Step, str]
    ) -> None:
        """One event leaves one step (and reason) for another."""
        if old == new:
            return
        self.add(received_at, where, old[0], old[1], -1)
        self.add(received_at, where, new[0], new[1], 1)

    def write(self) -> None:
        """Upsert every rollup table (rollups.ROLLUPS: each grain, with and without the event dimensions)
        with one prepared statement."""
        minutes = self.counts
        hours = _regroup(minutes, lambda key: (hour_of(key[0]), *key[1:]))
        by_grain = {
            rollups.MINUTE: minutes,
            rollups.HOUR: hours,
            rollups.DAY: _regroup(hours, lambda key: (day_of(key[0]), *key[1:])),
        }
        tables = [
            by_grain[t.grain] if t.by_event else _regroup(by_grain[t.grain], _step_key)
            for t in rollups.ROLLUPS
        ]
        self.counts, self._minutes = Counter(), {}
        if any(minutes.values()):
            execute_prepared(_UPSERT_ROLLUPS, [param for counts in tables for param in _columns(counts)])
            metrics.count_moves(minutes)


def _step_key(key: tuple) -> tuple:
    return key[:STEP_KEY_LENGTH]


def _regroup(counts: Counter[tuple], regroup) -> Counter[tuple]:
    grouped: Counter[tuple] = Counter()
    for key, n in counts.items():
        grouped[regroup(key)] += n
    return grouped


def _columns(counts: Counter[tuple]) -> list[list]:
    """The counts as one array per key part and one of counts, keys sorted so that concurrent batches
    lock rows in the same order and never deadlock."""
    keys = sorted((k for k, n in counts.items() if n), key=_sort_key)
    if not keys:
        return [[] for _ in range(len(next(iter(counts))) + 1)]  # (a batch's moves can cancel out)
    return [list(column) for column in zip(*[(*k, counts[k]) for k in keys], strict=True)]


def _upsert(table: rollups.RollupTable) -> str:
    key = ", ".join(table.key)
    unnest = ", ".join(f"%b::{column.sql_type}[]" for column in (*table.key_columns, rollups.COUNT))
    return (
        f"INSERT INTO {table.table} ({key}, count) SELECT * FROM unnest({unnest})"
        f" ON CONFLICT ({key}) DO UPDATE SET count = {table.table}.count + excluded.count"
    )


# Data-modifying WITH clauses all run, in this order (the tables' order is part of the lock order).
_UPSERT_ROLLUPS = "WITH " + ", ".join(f"{t.table} AS ({_upsert(t)})" for t in rollups.ROLLUPS) + " SELECT 1"


# Once a key's bucket holds SAMPLES_PER_BUCKET, a sample is still taken when its error message is new
# to the bucket, or when the newest kept is this old: the kept ones stay the bucket's newest, at most
# one per this interval, so a busy key costs a few samples a minute, not one per event.
SAMPLE_REFRESH = dt.timedelta(seconds=10)


@dataclass
class _Kept:
    """What a key's bucket was given: how many samples, the newest one's time, its error messages."""

    count: int = 0
    newest: dt.datetime | None = None
    messages: set[str] = field(default_factory=set)

    def take(self, at: dt.datetime, message: str) -> None:
        self.count += 1
        self.newest = at if self.newest is None else max(self.newest, at)
        if len(self.messages) < SAMPLES_PER_BUCKET:
            self.messages.add(message)

    def wants(self, at: dt.datetime, message: str) -> bool:
        if self.count < SAMPLES_PER_BUCKET:
            return True
        if message not in self.messages and len(self.messages) < SAMPLES_PER_BUCKET:
            return True
        return self.newest is None or at - self.newest >= SAMPLE_REFRESH


class _Offered:
    """Samples this process has had committed, per key and bucket, so that later batches skip building
    rows the bucket would not keep — most of a busy batch's events, bodies and all. Only committed
    batches count: a rolled-back one offered nothing."""

    def __init__(self) -> None:
        self.kept: dict[tuple, _Kept] = {}

    def get(self, key: tuple) -> _Kept:
        return self.kept.get(key) or _Kept()

    def spend(self, rows: dict[tuple, list[tuple[dt.datetime, str]]]) -> None:
        if len(self.kept) > 100_000:
            self.kept.clear()  # old buckets; forgetting them costs at most a few extra offers
        for key, offered in rows.items():
            kept = self.kept.setdefault(key, _Kept())
            for at, message in offered:
                kept.take(at, message)

    def clear(self) -> None:
        self.kept.clear()


OFFERED = _Offered()


def _sample_key(at: dt.datetime, where: Where, step: Step | str, reason_code: str) -> tuple:
    return (bucket_of(at), where.source_id, where.destination_id, where.mapping_id, str(step), reason_code)


_SAMPLE_TYPES = (
    "timestamptz[]", "timestamptz[]", "bigint[]", "bigint[]", "bigint[]", "bigint[]", "text[]", "text[]",
    "text[]", "text[]", "text[]", "text[]", "int[]", "text[]", "text[]", "jsonb[]", "jsonb[]", "jsonb[]",
)  # fmt: skip
_SAMPLE_COLUMNS = (
    "at, bucket, workspace_id, source_id, destination_id, mapping_id, step, reason_code,"
    " event_type, event_name, app_version, message_id, status, error_type, error_message,"
    " sent, body, response"
)
_INSERT_SAMPLES = (
    f"INSERT INTO delivery_sample ({_SAMPLE_COLUMNS})"
    f" SELECT * FROM unnest({', '.join(f'%s::{kind}' for kind in _SAMPLE_TYPES)})"
)
# Each touched bucket keeps SAMPLES_PER_BUCKET: the newest of each distinct error message first, then the
# newest of the rest. Rows another batch is trimming are skipped (SKIP LOCKED), so two batches never
# wait on each other here; the next batch trims what either left over.
_TRIM_SAMPLES = f"""
WITH touched AS (
    SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[])
        AS t(bucket, source_id, destination_id, mapping_id, step, reason_code)
), ranked AS (
    SELECT s.at, s.id, row_number() OVER (
        PARTITION BY t.bucket, t.source_id, t.destination_id, t.mapping_id, t.step, t.reason_code
        ORDER BY s.repeat, s.at DESC, s.id DESC
    ) AS place
    FROM touched t
    CROSS JOIN LATERAL (
        SELECT s.at, s.id, row_number() OVER (PARTITION BY s.error_message ORDER BY s.at DESC, s.id DESC) > 1
            AS repeat
        FROM delivery_sample s
        WHERE s.source_id = t.source_id
          AND s.destination_id IS NOT DISTINCT FROM t.destination_id
          AND s.mapping_id IS NOT DISTINCT FROM t.mapping_id
          AND s.step = t.step AND s.reason_code = t.reason_code
          AND s.at >= t.bucket AND s.at < t.bucket + interval '10 minutes'
    ) s
), doomed AS (
    SELECT s.at, s.id FROM delivery_sample s JOIN ranked r ON r.at = s.at AND r.id = s.id
    WHERE r.place > {SAMPLES_PER_BUCKET}
    FOR UPDATE OF s SKIP LOCKED
)
DELETE FROM delivery_sample s USING doomed d WHERE s.at = d.at AND s.id = d.id
"""


@dataclass
class SampleBatch:
    """Samples for one batch: per key and bucket, the bucket keeps the newest SAMPLES_PER_BUCKET,
    favouring distinct error messages (see SAMPLE_REFRESH for how often a full bucket takes another)."""

    rows: dict[tuple, list[tuple]] = field(default_factory=lambda: defaultdict(list))

    def wants(
        self,
        at: dt.datetime,
        where: Where,
        step: Step | str,
        reason_code: Reason | str = "",
        message: str = "",
    ) -> bool:
        """Whether a sample for this key would be taken: ask before building an expensive one."""
        key = _sample_key(at, where, step, reason_code)
        kept = OFFERED.get(key)
        kept = _Kept(kept.count, kept.newest, set(kept.messages))
        for row in self.rows.get(key, ()):
            kept.take(row[0], row[8])
        return kept.wants(at, message[:2000])

    def add(
        self,
        at: dt.datetime,
        where: Where,
        step: Step,
        reason_code: Reason | str = "",
        *,
        message_id: str = "",
        status: int | None = None,
        error_type: str = "",
        error_message: str = "",
        sent: object = None,
        body: object = None,
        response: object = None,
    ) -> None:
        if not self.wants(at, where, step, reason_code, error_message):
            return
        rows = self.rows[_sample_key(at, where, step, reason_code)]
        rows.append(
            (
                at,
                where.workspace_id,
                where.event_type,
                where.event_name,
                where.app_version,
                message_id,
                status,
                error_type,
                error_message[:2000],
                _json(sent),
                _json(body),
                _json(response),
            )
        )

    def write(self) -> None:
        offered = {key: [(row[0], row[8]) for row in rows] for key, rows in self.rows.items() if rows}
        if offered:
            transaction.on_commit(lambda: OFFERED.spend(offered))  # a rolled-back batch offered nothing
        flat = []
        for (bucket, source_id, destination_id, mapping_id, step, reason_code), rows in self.rows.items():
            for row in rows:
                at, workspace_id, event_type, event_name, app_version, *rest = row
                flat.append(
                    (
                        at, bucket, workspace_id, source_id, destination_id, mapping_id, step, reason_code,
                        event_type, event_name, app_version, *rest,
                    )
                )  # fmt: skip
        self.rows.clear()
        if not flat:
            return
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SAMPLES, [list(column) for column in zip(*_redacted(flat), strict=True)])
            cursor.execute(_TRIM_SAMPLES, [list(column) for column in zip(*offered, strict=True)])


def _redacted(flat: list[tuple]) -> list[tuple]:
    """The rows with secrets out of the error message, the JSON sent and the answer: known shapes, and
    the credentials of each row's destination (one query for the destinations of the batch)."""
    destination_ids = {row[4] for row in flat if row[4] is not None}
    secrets = {
        d.id: redaction.secret_values(d.credentials)
        for d in Destination.objects.filter(id__in=destination_ids).only("id", "credentials_encrypted")
    }
    cleaned = []
    for row in flat:
        known = secrets.get(row[4], ())
        *head, error_message, sent, body, response = row
        texts = [redaction.redact(text, known) for text in (error_message, sent, body, response)]
        cleaned.append((*head, *texts))
    return cleaned


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, default=str)
