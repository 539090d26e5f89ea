"""Bulk retries on the in-process pipeline against a real local HTTP server: events ingested through the
tracking API, routed to two mappings, refused with a 400 until the destination is fixed. The dry run
counts them; the job queues them again and delivery sends them; the counts move exactly (per received
minute, per mapping and for the event as a whole, nothing created or lost); a second job sends nothing
twice; a cancelled job leaves the rest failed and counted."""

from typing import NamedTuple

import pytest
from django.db import connection
from django.test import Client
from werkzeug import Response

from delivery import batching, routing
from delivery.models import Destination, Event, Mapping
from overview import retries
from overview.figures.events import UndeliveredFilter
from overview.models import RetryJob
from tests.conftest import wait_until
from tests.delivery.test_delivery import setup_destination, track
from tests.delivery.test_ingest import post
from tests.factories import make_mapping

EVENTS = 12


class Failed(NamedTuple):
    destination: Destination
    mappings: tuple[Mapping, Mapping]
    answers: dict  # "fixed": whether the destination now accepts; "requests": event copies it received


@pytest.fixture
def failed(transactional_db, httpserver, fast_retries) -> Failed:
    answers = {"fixed": False, "requests": 0, "received": []}

    def answer(request):
        batch = request.get_json()["batch"]
        if not answers["fixed"]:
            return Response('{"error": "invalid api key"}', 400, content_type="application/json")
        answers["received"] += [item["messageId"] for item in batch]
        return Response('{"ok": true}', 200, content_type="application/json")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    destination, first = setup_destination(httpserver.url_for("/hook"), batch_size=5, max_retries=2)
    second = make_mapping(destination, name="Second")
    source = destination.sources.get()
    assert post(Client(), "/v1/batch", {"batch": [track(i) for i in range(EVENTS)]}, key=source.write_key)
    routing.route_requested(list(Event.objects.filter(source_id=source.id).values_list("id", flat=True)))
    deliver_all(destination)
    # A real worker, when a test has one, may be the one that routes and sends them: wait for its end.
    wait_until(
        lambda: steps(counts(destination), None) == {"failed_delivery": EVENTS},
        timeout=30,
        what="every event failed",
    )
    return Failed(destination, (first, second), answers)


def deliver_all(destination: Destination) -> None:
    for mapping in destination.mappings.all():
        for _ in range(3):
            batching.deliver_due(destination.id, mapping.id)


def counts(destination: Destination) -> dict[tuple, int]:
    """(minute, mapping, step) -> events, from the rollups the pages read (mapping None: whole events)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT minute, mapping_id, step, sum(count) FROM delivery_rollup WHERE destination_id = %s"
            " GROUP BY 1, 2, 3",
            [destination.id],
        )
        return {(minute, mapping, step): int(n) for minute, mapping, step, n in cursor.fetchall() if n}


def per_minute_and_mapping(found: dict[tuple, int]) -> dict[tuple, int]:
    total: dict[tuple, int] = {}
    for (minute, mapping, _), n in found.items():
        total[(minute, mapping)] = total.get((minute, mapping), 0) + n
    return total


def steps(found: dict[tuple, int], mapping) -> dict[str, int]:
    by_step: dict[str, int] = {}
    for (_, m, step), n in found.items():
        if m == mapping:
            by_step[step] = by_step.get(step, 0) + n
    return by_step


def test_the_dry_run_counts_and_changes_nothing(failed):
    before = counts(failed.destination)

    preview = retries.preview(failed.destination, retries.failed_only(UndeliveredFilter()))

    assert preview.count == 2 * EVENTS
    by_mapping = [(c.mapping.name, c.count) for c in preview.by_mapping]
    assert by_mapping == [("All events", EVENTS), ("Second", EVENTS)]
    assert (preview.delivered_since, preview.pending_retry) == (0, 0)
    assert counts(failed.destination) == before
    assert steps(before, None) == {"failed_delivery": EVENTS}  # each event once, as a whole


def test_a_retry_after_the_fix_delivers_every_failed_event_and_the_counts_move_exactly(failed):
    destination, (first, second), answers = failed
    before = counts(destination)
    assert steps(before, first.id)["failed_delivery"] == steps(before, second.id)["failed_delivery"] == EVENTS
    answers["fixed"] = True

    job = retries.start(destination, retries.failed_only(UndeliveredFilter()), None)
    while retries.run(job.id):
        pass
    queued = counts(destination)
    deliver_all(destination)
    after = counts(destination)

    job.refresh_from_db()
    assert (job.state, job.total, job.queued, job.skipped) == ("done", 2 * EVENTS, 2 * EVENTS, 0)
    # Queued again: out of Failed delivery, awaiting delivery, for the same received minutes.
    assert steps(queued, first.id) == {"queued": EVENTS}
    assert steps(queued, None).get("failed_delivery", 0) == 0
    # Delivered: every one, once per mapping.
    assert sorted(answers["received"]) == sorted(2 * [f"msg-{i}" for i in range(EVENTS)])
    for mapping in (first.id, second.id, None):
        assert steps(after, mapping).get("delivered") == EVENTS, mapping
        assert steps(after, mapping).get("failed_delivery", 0) == 0
    # Conserved: each minute's events, per mapping and as a whole, are the same number before and after.
    assert per_minute_and_mapping(after) == per_minute_and_mapping(before)
    assert retries.progress(job) == retries.Progress(delivered=2 * EVENTS, failed=0, waiting=0)
    # Each event got the destination's retries again: the outcome kept its attempts, counted from there.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT attempts, retry_base FROM delivery_outcome WHERE destination_id = %s",
            [destination.id],
        )
        assert cursor.fetchall() == [(2, 1)]


def test_a_second_job_for_the_same_events_sends_nothing_twice(failed):
    destination, _, answers = failed
    answers["fixed"] = True
    match = retries.failed_only(UndeliveredFilter())
    one = retries.start(destination, match, None)
    two = retries.start(destination, match, None)  # both counted the same 24 before either ran

    while retries.run(one.id) or retries.run(two.id):
        pass
    deliver_all(destination)

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.total, one.queued, one.skipped) == (2 * EVENTS, 2 * EVENTS, 0)
    assert (two.total, two.queued) == (2 * EVENTS, 0) and two.skipped == 0  # nothing failed was left
    assert len(answers["received"]) == 2 * EVENTS  # each event once per mapping
    assert retries.preview(destination, match).count == 0


def test_a_cancelled_job_leaves_the_rest_failed_and_counted(failed, monkeypatch):
    destination, (first, second), answers = failed
    answers["fixed"] = True
    monkeypatch.setattr(retries, "CHUNK", 5)
    match = retries.failed_only(UndeliveredFilter())
    job = RetryJob.objects.create(
        workspace=destination.workspace, destination=destination, filters=retries._stored(match), total=24
    )

    assert retries.run(job.id, chunks=1)
    assert retries.cancel(job)
    assert not retries.run(job.id)
    deliver_all(destination)

    job.refresh_from_db()
    assert (job.state, job.queued, job.skipped) == ("cancelled", 5, 0)
    after = counts(destination)
    delivered = steps(after, first.id).get("delivered", 0) + steps(after, second.id).get("delivered", 0)
    failed_now = steps(after, first.id).get("failed_delivery", 0) + steps(after, second.id).get(
        "failed_delivery", 0
    )
    assert (delivered, failed_now) == (5, 2 * EVENTS - 5)
    assert retries.preview(destination, match).count == 2 * EVENTS - 5
    assert retries.progress(job) == retries.Progress(delivered=5, failed=0, waiting=0)


def test_delivered_since_counts_the_events_that_failed_like_this_and_were_delivered(failed):
    destination, (first, _), answers = failed
    answers["fixed"] = True
    only_first = retries.failed_only(UndeliveredFilter(mapping_id=first.id))
    job = retries.start(destination, only_first, None)
    while retries.run(job.id):
        pass
    deliver_all(destination)

    again = retries.preview(destination, retries.failed_only(UndeliveredFilter(reason_code="400")))

    assert again.count == EVENTS  # the second mapping's
    assert again.delivered_since == EVENTS  # the first mapping's, failed with a 400, delivered since
