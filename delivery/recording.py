"""Writes the pipeline's counts and samples: one statement per batch, in the caller's transaction.

Every step change of every event goes through `Tally` (rollup deltas, pre-summed in Python and
upserted with sorted keys so concurrent batches never deadlock) and, for examples operators can
inspect, `SampleBatch` (bounded per key and 10-minute bucket).
"""

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction

from delivery import redaction, rollups
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


class _Offered:
    """Samples this process has had committed, per key and bucket. Once SAMPLES_PER_BUCKET were offered
    for a key, its bucket is full (each was stored, or refused as over the bound), so later batches
    skip building rows the database would throw away — most of a busy batch's events, bodies and all."""

    def __init__(self) -> None:
        self.counts: dict[tuple, int] = {}

    def get(self, key: tuple) -> int:
        return self.counts.get(key, 0)

    def spend(self, counts: dict[tuple, int]) -> None:
        if len(self.counts) > 100_000:
            self.counts.clear()  # old buckets; forgetting them costs at most a few extra offers
        for key, n in counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def clear(self) -> None:
        self.counts.clear()


OFFERED = _Offered()


def _sample_key(at: dt.datetime, where: Where, step: Step | str, reason_code: str) -> tuple:
    return (bucket_of(at), where.source_id, where.destination_id, where.mapping_id, str(step), reason_code)


@dataclass
class SampleBatch:
    """Samples for one batch, at most SAMPLES_PER_BUCKET per key and bucket (counting stored ones)."""

    rows: dict[tuple, list[tuple]] = field(default_factory=lambda: defaultdict(list))

    def wants(self, at: dt.datetime, where: Where, step: Step | str, reason_code: Reason | str = "") -> bool:
        """Whether a sample for this key would still be kept: ask before building an expensive one."""
        key = _sample_key(at, where, step, reason_code)
        return OFFERED.get(key) + len(self.rows.get(key, ())) < SAMPLES_PER_BUCKET

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
        if not self.wants(at, where, step, reason_code):
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
        offered = {key: len(rows) for key, rows in self.rows.items() if rows}
        if offered:
            transaction.on_commit(lambda: OFFERED.spend(offered))  # a rolled-back batch offered nothing
        flat = []
        for (bucket, source_id, destination_id, mapping_id, step, reason_code), rows in self.rows.items():
            for rank, row in enumerate(rows, start=1):
                at, workspace_id, event_type, event_name, app_version, *rest = row
                flat.append(
                    (
                        at, bucket, workspace_id, source_id, destination_id, mapping_id, step, reason_code,
                        event_type, event_name, app_version, *rest, rank,
                    )
                )  # fmt: skip
        self.rows.clear()
        if not flat:
            return
        flat = _redacted(flat)
        types = (
            "timestamptz[]", "timestamptz[]", "bigint[]", "bigint[]", "bigint[]", "bigint[]", "text[]",
            "text[]", "text[]", "text[]", "text[]", "text[]", "int[]", "text[]", "text[]", "jsonb[]",
            "jsonb[]", "jsonb[]", "int[]",
        )  # fmt: skip
        names = (
            "at, bucket, workspace_id, source_id, destination_id, mapping_id, step, reason_code,"
            " event_type, event_name, app_version, message_id, status, error_type, error_message,"
            " sent, body, response"
        )
        unnest = ", ".join(f"%s::{kind}" for kind in types)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH candidate AS (
                    SELECT * FROM unnest({unnest}) AS c({names}, rank)
                )
                INSERT INTO delivery_sample ({names})
                SELECT {", ".join("c." + n.strip() for n in names.split(","))} FROM candidate c
                WHERE c.rank + (
                    SELECT count(*) FROM delivery_sample s
                    WHERE s.source_id = c.source_id
                      AND s.destination_id IS NOT DISTINCT FROM c.destination_id
                      AND s.mapping_id IS NOT DISTINCT FROM c.mapping_id
                      AND s.step = c.step AND s.reason_code = c.reason_code
                      AND s.at >= c.bucket AND s.at < c.bucket + interval '10 minutes'
                ) <= {SAMPLES_PER_BUCKET}
                """,
                [list(column) for column in zip(*flat, strict=True)],
            )


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
        *head, error_message, sent, body, response, rank = row
        texts = [redaction.redact(text, known) for text in (error_message, sent, body, response)]
        cleaned.append((*head, *texts, rank))
    return cleaned


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, default=str)
