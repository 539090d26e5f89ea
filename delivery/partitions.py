"""Daily partitions of the pipeline's tables: created ahead of time, dropped after retention."""

import datetime as dt
import logging

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_migrate

from delivery import rollups

log = logging.getLogger(__name__)

# Every table partitioned by day -> the column it is partitioned on; created by migrations 0002 to
# 0004, 0009 and 0010. The rollups are those rollups.ROLLUPS declares, on their time column. Attempts go by
# their event's received time, so they are dropped with the events.
PARTITIONED = {
    "delivery_event": "received_at",
    "delivery_outcome": "received_at",
    **{rollup.table: rollups.TIME.name for rollup in rollups.ROLLUPS},
    "delivery_sample": "at",
    "delivery_seenmessage": "day",
    "delivery_attempt": "received_at",
    "delivery_batchrequest": "at",
    "delivery_rejectedmessage": "received_at",
}
DAYS_AHEAD = 3


def _name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def ensure_partitions(today: dt.date | None = None, days_back: int | None = None) -> int:
    """Create the daily partitions from `days_back` days ago to DAYS_AHEAD days ahead; returns how many."""
    today = today or dt.datetime.now(dt.UTC).date()
    days_back = settings.EVENT_RETENTION_DAYS + 1 if days_back is None else days_back
    created = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)",
            [list(PARTITIONED)],
        )
        existing = {row[0] for row in cursor.fetchall()}
        for offset in range(-days_back, DAYS_AHEAD + 1):
            day = today + dt.timedelta(days=offset)
            for table in PARTITIONED:
                name = _name(table, day)
                if name in existing:
                    continue
                following = day + dt.timedelta(days=1)
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}"'
                    f" FOR VALUES FROM ('{day.isoformat()}') TO ('{following.isoformat()}')"
                )
                created += 1
    return created


def days(table: str = "delivery_event") -> list[dt.date]:
    """The days a partitioned table has partitions for, oldest first (its default partition aside)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [table],
        )
        suffixes = [row[0].rsplit("_p", 1)[-1] for row in cursor.fetchall()]
    return sorted(dt.datetime.strptime(s, "%Y%m%d").date() for s in suffixes if s.isdigit())


def drop_expired_partitions(today: dt.date | None = None, keep_days: int | None = None) -> list[str]:
    """Drop whole daily partitions older than the retention; never DELETE rows."""
    today = today or dt.datetime.now(dt.UTC).date()
    keep_days = settings.EVENT_RETENTION_DAYS if keep_days is None else keep_days
    oldest_kept = today - dt.timedelta(days=keep_days)
    dropped = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)",
            [list(PARTITIONED)],
        )
        for (name,) in cursor.fetchall():
            suffix = name.rsplit("_p", 1)[-1]
            if not suffix.isdigit():
                continue  # the default partition
            if dt.datetime.strptime(suffix, "%Y%m%d").date() < oldest_kept:
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
                dropped.append(name)
    if dropped:
        log.info("dropped %d expired partitions", len(dropped))
    return dropped


def _after_migrate(sender, **kwargs) -> None:
    if sender.name == "delivery":
        ensure_partitions()


def connect_signals() -> None:
    post_migrate.connect(_after_migrate, dispatch_uid="delivery.ensure_partitions")
