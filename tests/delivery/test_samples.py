"""Samples: each key's 10-minute bucket keeps its newest few, favouring distinct error messages."""

import datetime as dt
from collections.abc import Iterator

import pytest

from delivery import recording
from delivery.models import Sample
from delivery.recording import SAMPLE_REFRESH, SampleBatch, Where
from delivery.steps import Step
from tests.factories import make_source, make_workspace

BUCKET = dt.datetime(2026, 12, 2, 20, 10, tzinfo=dt.UTC)  # a bucket starts on a multiple of 10 minutes


@pytest.fixture
def where(transactional_db) -> Iterator[Where]:
    """A source's key; batches commit as they are written, so the process counts what it kept."""
    recording.OFFERED.clear()
    yield Where((source := make_source(make_workspace())).workspace_id, source.id, event_type="track")
    recording.OFFERED.clear()


def record(where: Where, *samples: tuple[float, str]) -> None:
    """One batch: a failed-on-ingest sample per (seconds into the bucket, error message)."""
    batch = SampleBatch()
    for seconds, message in samples:
        at = BUCKET + dt.timedelta(seconds=seconds)
        batch.add(
            at, where, Step.FAILED_ON_INGEST, "invalid", message_id=f"m{seconds:g}", error_message=message
        )
    batch.write()


def kept(where: Where) -> list[str]:
    rows = Sample.objects.filter(source_id=where.source_id).order_by("-at", "-id")
    return list(rows.values_list("message_id", flat=True))


def test_a_full_bucket_keeps_its_newest_samples(where):
    for second in range(10):
        record(where, (second, "timeout"))
    record(where, (60, "timeout"))
    record(where, (120, "timeout"), (121, "timeout"))  # the second one is within SAMPLE_REFRESH: not taken

    assert kept(where) == ["m120", "m60", "m9", "m8", "m7", "m6", "m5", "m4", "m3", "m2"]


def test_a_full_bucket_takes_another_only_every_refresh_interval_or_for_a_new_message(where):
    record(where, *((0, "timeout") for _ in range(10)))
    batch = SampleBatch()
    at = BUCKET + dt.timedelta(seconds=1)
    sample = (where, Step.FAILED_ON_INGEST, "invalid")

    assert not batch.wants(at, *sample, "timeout")
    assert batch.wants(at, *sample, "email is not a valid address")
    assert batch.wants(BUCKET + SAMPLE_REFRESH, *sample, "timeout")
    # Another bucket of the same key starts empty.
    assert batch.wants(BUCKET + dt.timedelta(minutes=10), *sample, "timeout")


def test_a_rare_error_message_outlives_newer_repeats_of_a_common_one(where):
    record(where, *((second, "timeout") for second in range(10)))
    record(where, (15, "email is not a valid address"))
    for second in range(20, 140, 10):
        record(where, (second, "timeout"))

    messages = dict(
        Sample.objects.filter(source_id=where.source_id).values_list("message_id", "error_message")
    )
    assert len(messages) == 10
    assert messages.pop("m15") == "email is not a valid address"
    newest_first = sorted(messages, key=lambda m: -int(m[1:]))
    assert newest_first == ["m130", "m120", "m110", "m100", "m90", "m80", "m70", "m60", "m50"]
