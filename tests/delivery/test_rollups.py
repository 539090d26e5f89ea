"""The rollup declaration is the tables as migrated: names, key columns in conflict-key order, SQL
types, grains; recording writes every declared table and partitions covers each of them."""

import datetime as dt

import pytest
from django.db import connection

from delivery import partitions, rollups
from delivery.recording import Tally, Where
from delivery.steps import Step
from tests.factories import make_source, make_workspace

pytestmark = pytest.mark.django_db


def columns_of(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            [table],
        )
        return dict(cursor.fetchall())


def unique_key_of(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s", [table, f"{table}_key"]
        )
        (definition,) = cursor.fetchone()
    return definition.partition("(")[2].partition(")")[0]


SQL_NAMES = {"timestamptz": "timestamp with time zone", "bigint": "bigint", "text": "text"}


@pytest.mark.parametrize("rollup", rollups.ROLLUPS, ids=lambda r: r.table)
def test_each_declared_table_has_exactly_its_key_columns_and_a_count(rollup):
    declared = {c.name: SQL_NAMES[c.sql_type] for c in (*rollup.key_columns, rollups.COUNT)}

    columns = columns_of(rollup.table)
    columns.pop("id", None)  # the two tables the ORM maps (models.Rollup, RollupHourly) also have an id

    assert columns == declared
    assert unique_key_of(rollup.table) == ", ".join(rollup.key)


def test_tables_are_found_by_grain_and_by_whether_they_keep_event_dimensions():
    assert rollups.table_for(rollups.HOUR, by_event=True) is rollups.ROLLUP_HOURLY
    assert rollups.table_for(rollups.MINUTE, by_event=False).table == "delivery_rollup_steps"
    assert [t.table for t in rollups.tables(by_event=True)] == [
        "delivery_rollup", "delivery_rollup_hourly", "delivery_rollup_daily"
    ]  # fmt: skip
    with pytest.raises(KeyError):
        rollups.table_for(rollups.DAY, by_event=False)


def test_every_rollup_is_partitioned_by_day_on_its_time_column():
    assert {t.table: partitions.PARTITIONED[t.table] for t in rollups.ROLLUPS} == {
        t.table: "minute" for t in rollups.ROLLUPS
    }


def test_one_tally_writes_every_declared_table():
    workspace = make_workspace()
    source = make_source(workspace)
    at = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    tally = Tally()
    tally.add(at, Where(workspace.id, source.id, event_type="track", event_name="Buy"), Step.RECEIVED, "", 3)
    tally.write()

    with connection.cursor() as cursor:
        for rollup in rollups.ROLLUPS:
            cursor.execute(f"SELECT minute, count FROM {rollup.table} WHERE source_id = %s", [source.id])
            floor = at.replace(second=0) if rollup.grain == rollups.MINUTE else at.replace(minute=0, second=0)
            if rollup.grain == rollups.DAY:
                floor = floor.replace(hour=0)
            assert cursor.fetchall() == [(floor, 3)], rollup.table
