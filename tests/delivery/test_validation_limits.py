"""The tracking API at the edges of what it can store: messages nested too deeply, bodies too deep to
read, numbers no reader can hold, NUL characters. Each bad message fails on ingest alone, with its own
code, and the good messages of its batch are stored and counted; nothing answers 500."""

import json

import pytest

from delivery import validation
from delivery.models import Event, Sample
from tests.delivery.test_ingest import auth, refused_counts, step_counts, track
from tests.factories import make_source, make_workspace

CUT = "[cut: nested more than 64 levels deep]"


@pytest.fixture
def source(db):
    return make_source(make_workspace())


def nested(levels: int, leaf: str = '"x"') -> str:
    """JSON text of objects nested `levels` deep ({"a": {"a": ... leaf}}), written without recursion."""
    return '{"a":' * levels + leaf + "}" * levels


def message_with_properties(i: int, properties: str) -> str:
    """A good track message as JSON text, its properties replaced by the given JSON text."""
    return json.dumps(track(i)).replace(json.dumps({"total": 10 * i}), properties)


def post_raw(client, path: str, body: str, source):
    return client.post(
        path, data=body.encode(), content_type="application/json", headers=auth(source.write_key)
    )


def batch_of(*messages: str) -> str:
    return '{"batch": [' + ",".join(messages) + "]}"


@pytest.mark.parametrize("levels", [64, 299, 999])  # the message is 1 level more: properties sit inside it
def test_a_message_nested_too_deeply_fails_alone_and_the_rest_of_the_batch_is_stored(client, source, levels):
    body = batch_of(json.dumps(track(1)), message_with_properties(2, nested(levels)), json.dumps(track(3)))

    answer = post_raw(client, "/v1/batch", body, source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert sorted(Event.objects.filter(source_id=source.id).values_list("message_id", flat=True)) == [
        "msg-1",
        "msg-3",
    ]
    assert step_counts(source.id) == {("received", ""): 3, ("failed_on_ingest", "nesting_too_deep"): 1}
    sample = Sample.objects.get(source_id=source.id, step="failed_on_ingest")
    assert (sample.reason_code, sample.message_id, sample.event_name) == (
        "nesting_too_deep",
        "msg-2",
        "Order Completed",
    )
    assert sample.error_message == (
        "The message nests objects and arrays more than 64 levels deep (the message itself is level 1)."
    )
    # The sample keeps the message down to level 64 and marks where it was cut.
    kept, depth = sample.body["properties"], 2
    while isinstance(kept, dict):
        kept, depth = kept["a"], depth + 1
    assert (kept, depth) == (CUT, 65)


def test_a_message_nested_exactly_64_levels_is_stored(client, source):
    answer = post_raw(client, "/v1/track", message_with_properties(1, nested(63)), source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 1
    assert step_counts(source.id) == {("received", ""): 1}


def test_a_single_message_nested_too_deeply_is_answered_200_and_counted_failed(client, source):
    answer = post_raw(client, "/v1/track", message_with_properties(1, nested(1000)), source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert not Event.objects.exists()
    assert step_counts(source.id) == {("received", ""): 1, ("failed_on_ingest", "nesting_too_deep"): 1}


def test_a_body_too_deep_to_read_is_400_with_its_code_and_counted(client, source):
    answer = post_raw(client, "/v1/batch", "[" * 100_000 + "]" * 100_000, source)

    assert answer.status_code == 400
    assert answer.json() == {
        "success": False,
        "code": "nesting_too_deep",
        "message": "The request body nests objects and arrays too deeply to read (over 1,000 levels);"
        " a message may nest at most 64 levels.",
    }
    assert (refused_counts(source.id), step_counts(source.id)) == ({"nesting_too_deep": 1}, {})


def test_a_deep_message_sent_to_a_disabled_source_is_counted_as_disabled(client, db):
    source = make_source(make_workspace(), enabled=False)

    answer = post_raw(client, "/v1/batch", batch_of(message_with_properties(1, nested(1000))), source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {("received", ""): 1, ("failed_on_ingest", "source_disabled"): 1}


@pytest.mark.parametrize("number", ["9" * 5000, "1e400", "-1e400"])
def test_a_number_no_reader_can_hold_fails_alone(client, source, number):
    body = batch_of(json.dumps(track(1)), message_with_properties(2, '{"n": ' + number + "}"))

    answer = post_raw(client, "/v1/batch", body, source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 1
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "bad_request"): 1}
    sample = Sample.objects.get(source_id=source.id, step="failed_on_ingest")
    assert (
        sample.error_message
        == validation.OUT_OF_RANGE
        == (
            "The message contains a number too large to store (a float beyond 1.8e308, or an integer of over"
            " 4,300 digits)."
        )
    )
    assert sample.body["properties"] == {"n": None}


def test_an_integer_beyond_64_bits_is_stored_as_the_nearest_float(client, source):
    # orjson reads it as a float, as JavaScript clients (which have no other numbers) would have sent it.
    big = 10**40 + 7

    answer = post_raw(client, "/v1/batch", batch_of(message_with_properties(1, f'{{"n": {big}}}')), source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.get(source_id=source.id).payload["properties"] == {"n": 10**40}


@pytest.mark.parametrize(
    ("properties", "error_message"),
    [
        ('{"a\\u0000b": 1}', "The message contains a NUL character (\\u0000), which cannot be stored."),
        ('{"\\udc00": 1}', "The message contains text that is not valid Unicode (an unpaired surrogate)."),
    ],
    ids=["nul-in-a-key", "surrogate-in-a-key"],
)
def test_a_key_postgresql_cannot_store_fails_alone(client, source, properties, error_message):
    body = batch_of(json.dumps(track(1)), message_with_properties(2, properties))

    answer = post_raw(client, "/v1/batch", body, source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 1
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "bad_request"): 1}
    assert Sample.objects.get(source_id=source.id).error_message == error_message


def test_a_deep_list_in_place_of_a_message_fails_as_not_an_object(client, source):
    body = batch_of(json.dumps(track(1)), "[" * 900 + "]" * 900)

    answer = post_raw(client, "/v1/batch", body, source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "bad_request"): 1}
    sample = Sample.objects.get(source_id=source.id)
    assert sample.error_message == "A message must be a JSON object, not a list."


@pytest.mark.parametrize("moment", ["9999-12-31T23:59-01:00", "0001-01-01T00:00+01:00"])
def test_a_timestamp_outside_the_years_postgresql_and_python_share_fails_alone(client, source, moment):
    body = batch_of(json.dumps(track(1)), json.dumps(track(2, timestamp=moment)))

    answer = post_raw(client, "/v1/batch", body, source)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "invalid_timestamp"): 1}
    assert Sample.objects.get(source_id=source.id).error_message == (
        f"timestamp is not an ISO 8601 date: {moment!r}."
    )
