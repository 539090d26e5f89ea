"""Attempt history, in-process against real local HTTP servers: every attempt of every outcome is
recorded with its number, timing, status and message, each batch request once with its headers
(credentials redacted), body and answer (capped), and the trace reads them back."""

from django.db import connection
from werkzeug import Response

from delivery import batching, history
from overview.figures import events
from tests.delivery.test_delivery import outcomes, queue_events, setup_destination, track

SECRET = "s3cret-header-value-42"


def attempts_of(destination) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.number, a.step, a.reason_code, a.status, a.error_type, a.error_message, a.request_id,"
            " a.duration_ms, a.retry_at, e.message_id FROM delivery_attempt a"
            " JOIN delivery_event e ON e.id = a.event_id AND e.received_at = a.received_at"
            " WHERE a.destination_id = %s ORDER BY e.message_id, a.number",
            [destination.id],
        )
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def make_due(destination) -> None:
    """As if the retry time had come: the pending events are due, and a pause the destination asked for
    has ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            # Due again in their first order, so that each batch comes back as it was.
            "UPDATE delivery_outcome SET next_attempt_at = now() - interval '1 hour' + id * interval '1 ms'"
            " WHERE destination_id = %s AND step = 'pending_retry'",
            [destination.id],
        )
        cursor.execute(
            "UPDATE delivery_destinationthrottle SET paused_until = NULL WHERE destination_id = %s",
            [destination.id],
        )


def test_every_attempt_and_each_batch_request_are_recorded_with_what_came_back(
    transactional_db, httpserver, fast_retries
):
    answers = iter(
        [
            Response(
                '{"error": "down for maintenance"}',
                503,
                {"Retry-After": "0"},
                content_type="application/json",
            ),
            Response("x" * 20_000, 429, {"Retry-After": "0"}),
            Response('{"ok": true}', 200, content_type="application/json"),
        ]
    )
    httpserver.expect_request("/hook").respond_with_handler(lambda request: next(answers))
    destination, mapping = setup_destination(
        httpserver.url_for("/hook"), credentials={"headers": {"X-Api-Key": SECRET}}
    )
    queue_events(destination, mapping, [track(i) for i in range(3)])

    for _ in range(3):
        batching.deliver_due(destination.id, mapping.id)
        make_due(destination)

    assert {row["step"] for row in outcomes(destination)} == {"delivered"}
    rows = attempts_of(destination)
    assert len(rows) == 9
    for message_id in ("msg-0", "msg-1", "msg-2"):
        mine = [r for r in rows if r["message_id"] == message_id]
        assert [(r["number"], r["step"], r["status"]) for r in mine] == [
            (1, "pending_retry", 503),
            (2, "pending_retry", 429),
            (3, "delivered", 200),
        ]
        assert mine[0]["error_type"] == "RETRYABLE_ERROR" and mine[1]["error_type"] == "TOO_MANY_REQUESTS"
        assert mine[0]["retry_at"] is not None and mine[2]["retry_at"] is None
        assert mine[2]["error_message"] == ""
    # One request per batch: the three events of each attempt share it.
    request_ids = sorted({r["request_id"] for r in rows})
    assert len(request_ids) == 3 and None not in request_ids
    first, second, third = (events.batch_request([destination.workspace_id], i) for i in request_ids)
    assert (first.status, second.status, third.status) == (503, 429, 200)
    assert first.size == 3 and first.url == httpserver.url_for("/hook")
    assert first.response_body == '{"error": "down for maintenance"}'
    assert first.response_headers["retry-after"] == "0"
    assert first.request_headers["X-Api-Key"] == "[redacted]"
    assert SECRET not in first.request_body + str(first.request_headers)
    assert '"msg-0"' in first.request_body and first.request_bytes == len(first.request_body.encode())
    # A big answer is kept cut at the limit, with its full size.
    assert len(second.response_body) == history.BODY_LIMIT and second.response_bytes == 20_000
    # Another workspace reads none of it.
    assert events.batch_request([destination.workspace_id + 1000], request_ids[0]) is None

    [event] = events.find([destination.workspace_id], message_id="msg-1")
    [delivery] = event.deliveries
    assert (delivery.destination_id, delivery.mapping_id, delivery.step) == (
        destination.id,
        mapping.id,
        "delivered",
    )
    assert [(a.number, a.status, a.request_id) for a in delivery.attempts] == [
        (1, 503, request_ids[0]),
        (2, 429, request_ids[1]),
        (3, 200, request_ids[2]),
    ]


def test_a_transport_error_is_an_attempt_with_no_answer_and_the_error_kept(transactional_db, fast_retries):
    destination, mapping = setup_destination("http://127.0.0.1:9/closed", max_retries=0)
    queue_events(destination, mapping, [track(1)])

    batching.deliver_due(destination.id, mapping.id)

    [row] = attempts_of(destination)
    assert (row["number"], row["step"], row["status"], row["reason_code"]) == (
        1,
        "failed_delivery",
        None,
        "RETRIES_EXHAUSTED",
    )
    assert "connection refused" in row["error_message"]
    sent = events.batch_request([destination.workspace_id], row["request_id"])
    assert sent.status is None and sent.error.startswith("connection refused")


def test_history_off_records_no_attempt(transactional_db, httpserver, fast_retries, settings):
    settings.DELIVERY_ATTEMPT_HISTORY = False
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    destination, mapping = setup_destination(httpserver.url_for("/hook"))
    queue_events(destination, mapping, [track(1)])

    batching.deliver_due(destination.id, mapping.id)

    assert [row["step"] for row in outcomes(destination)] == ["delivered"]
    assert attempts_of(destination) == []
