"""The ground: real PostgreSQL with daily partitions, a real Celery worker over the real broker."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection

from delivery import partitions
from delivery.tasks import maintain_partitions
from tests.conftest import wait_until


def partition_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def test_migrations_are_complete(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_partitions_cover_retention_and_the_days_ahead(db):
    today = dt.datetime.now(dt.UTC).date()
    for table in partitions.PARTITIONED:
        assert partition_exists(f"{table}_p{today:%Y%m%d}")
        assert partition_exists(f"{table}_p{today + dt.timedelta(days=partitions.DAYS_AHEAD):%Y%m%d}")
        assert partition_exists(f"{table}_p{today - dt.timedelta(days=14):%Y%m%d}")


def test_expired_partitions_are_dropped_whole(db):
    today = dt.datetime.now(dt.UTC).date()
    old = today - dt.timedelta(days=20)
    partitions.ensure_partitions(today=today, days_back=20)
    assert partition_exists(f"delivery_event_p{old:%Y%m%d}")
    dropped = partitions.drop_expired_partitions(today=today, keep_days=14)
    assert f"delivery_event_p{old:%Y%m%d}" in dropped
    assert not partition_exists(f"delivery_event_p{old:%Y%m%d}")
    assert partition_exists(f"delivery_event_p{today - dt.timedelta(days=14):%Y%m%d}")


@pytest.mark.e2e
def test_a_real_worker_runs_a_task_and_its_effect_is_in_the_database(celery_worker):
    ahead = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=partitions.DAYS_AHEAD)
    name = f"delivery_sample_p{ahead:%Y%m%d}"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{name}"')
    assert not partition_exists(name)

    maintain_partitions.delay()

    wait_until(lambda: partition_exists(name), timeout=30, what=f"the worker to re-create {name}")
