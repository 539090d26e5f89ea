"""The tracking API: an application's analytics client posts here; every message is stored or counted
with the reason it failed on ingest, and the client gets the answer it can act on."""

import base64
import datetime as dt
import gzip
import json

import pytest
from django.db import connection

from delivery import ingest, validation
from delivery.models import Event, RefusedRequest, Sample
from tests.factories import make_source, make_workspace

NOW = "2024-05-01T12:00:00.000Z"


def auth(write_key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def post(client, path: str, body, *, key: str | None = None, gzipped: bool = False, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = auth(key) if key else {}
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    return client.post(path, data=data, content_type="application/json", headers=headers)


def refused_counts(source_id: int) -> dict[str, int]:
    """The source's refused requests (delivery.refused): code -> requests."""
    rows = RefusedRequest.objects.filter(source_id=source_id).values_list("code", "count")
    return {code: n for code, n in rows}


def step_counts(source_id: int, table: str = "delivery_rollup") -> dict[tuple[str, str], int]:
    """Source-level counts: (step, reason) -> events, from the rollups the dashboard reads."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT step, reason_code, sum(count) FROM {table}"
            " WHERE source_id = %s AND destination_id IS NULL GROUP BY 1, 2",
            [source_id],
        )
        return {(step, reason): int(n) for step, reason, n in cursor.fetchall() if n}


def rejected_messages(source_id: int) -> list[tuple]:
    """The messages kept as failed on ingest: (reason code, error message, body), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reason_code, error_message, body FROM delivery_rejectedmessage WHERE source_id = %s"
            " ORDER BY id",
            [source_id],
        )
        rows = cursor.fetchall()
    return [(code, text, json.loads(body) if isinstance(body, str) else body) for code, text, body in rows]


def track(i: int = 1, **fields) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": f"user-{i}",
        "messageId": f"msg-{i}",
        "timestamp": NOW,
        "properties": {"total": 10 * i},
        "context": {"app": {"version": "2.3.0"}},
        **fields,
    }


@pytest.fixture
def source(db):
    return make_source(make_workspace())


def test_a_batch_is_stored_with_the_server_time_and_the_events_own_timestamp(client, source):
    before = dt.datetime.now(dt.UTC)
    batch = [
        track(1),
        {"type": "identify", "anonymousId": "anon-1", "messageId": "msg-2", "traits": {"plan": "pro"}},
        {"type": "page", "userId": "user-3", "messageId": "msg-3", "name": "Pricing", "category": "Docs"},
    ]
    answer = post(client, "/v1/batch", {"batch": batch, "sentAt": NOW}, key=source.write_key)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    events = {e.message_id: e for e in Event.objects.filter(source_id=source.id)}
    assert [(e.type, e.name, e.app_version) for e in events.values()] == [
        ("track", "Order Completed", "2.3.0"),
        ("identify", "", ""),
        ("page", "Pricing", ""),
    ]
    order = events["msg-1"]
    assert before <= order.received_at <= dt.datetime.now(dt.UTC)
    # The client sent it the moment it happened (sentAt = its timestamp): the event's time is the
    # server's receivedAt, whatever the client's clock said; its own time is kept as originalTimestamp.
    assert order.timestamp == order.received_at
    received = order.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert order.payload == {
        **track(1),
        "sentAt": NOW,
        "originalTimestamp": NOW,
        "receivedAt": received,
        "timestamp": received,
    }
    assert order.routed_at is None
    assert step_counts(source.id) == {("received", ""): 3}
    assert step_counts(source.id, "delivery_rollup_hourly") == {("received", ""): 3}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/track", "track"),
        ("/v1/identify", "identify"),
        ("/v1/page", "page"),
        ("/v1/screen", "screen"),
        ("/v1/group", "group"),
        ("/v1/alias", "alias"),
    ],
)
def test_each_single_message_endpoint_stores_its_type_with_the_write_key_in_the_body(
    client, source, path, kind
):
    body = {"writeKey": source.write_key, "userId": "user-1", "messageId": "m-1", "event": "Signed Up"}
    body |= {"group": {"groupId": "acme"}, "alias": {"previousId": "anon-1"}}.get(kind, {})

    answer = post(client, path, body)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    event = Event.objects.get(source_id=source.id)
    assert event.type == kind
    assert "writeKey" not in event.payload  # the credential is not kept with the event
    assert step_counts(source.id) == {("received", ""): 1}


def test_a_gzipped_batch_is_read(client, source):
    answer = post(client, "/v1/batch", {"batch": [track(1), track(2)]}, key=source.write_key, gzipped=True)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 2


def test_batch_level_context_and_integrations_reach_each_message(client, source):
    body = {
        "batch": [{"type": "track", "event": "Viewed", "userId": "u", "messageId": "m"}],
        "context": {"library": {"name": "analytics-node"}},
        "integrations": {"All": False},
    }
    post(client, "/v1/batch", body, key=source.write_key)

    payload = Event.objects.get(source_id=source.id).payload
    assert payload["context"] == {"library": {"name": "analytics-node"}}
    assert payload["integrations"] == {"All": False}


def test_a_message_without_a_message_id_gets_one(client, source):
    post(client, "/v1/track", {"userId": "u", "event": "Viewed"}, key=source.write_key)

    event = Event.objects.get(source_id=source.id)
    assert event.message_id.startswith("srv-")
    assert event.payload["messageId"] == event.message_id


INVALID = [
    ({"event": "Viewed", "userId": "u"}, "unsupported_type", "The message has no type."),
    (
        {"type": "purchase", "userId": "u"},
        "unsupported_type",
        "The message type 'purchase' is not one of track, identify, page, screen, group, alias.",
    ),
    (
        {"type": "track", "event": "Viewed"},
        "no_user_anon_id",
        "The message has neither a userId nor an anonymousId.",
    ),
    ({"type": "identify", "userId": 42}, "id_not_string", "userId must be a non-empty string, not a number."),
    (
        {"type": "identify", "anonymousId": ""},
        "id_not_string",
        "anonymousId: an empty string, and no other id (one must be non-empty).",
    ),
    (
        {"type": "identify", "userId": "", "anonymousId": ""},
        "id_not_string",
        "userId and anonymousId: an empty string, and no other id (one must be non-empty).",
    ),
    (
        {"type": "alias", "userId": "u"},
        "previous_id_required",
        "The alias message needs a previousId (a non-empty string), not null.",
    ),
    (
        {"type": "group", "userId": "u", "groupId": ""},
        "group_id_required",
        "The group message needs a groupId (a non-empty string), not an empty string.",
    ),
    ({"type": "track", "userId": "u"}, "event_not_defined", "The track message has no event name."),
    (
        {"type": "track", "userId": "u", "event": ""},
        "event_not_defined",
        "The track message has no event name.",
    ),
    (
        {"type": "track", "userId": "u", "event": 7},
        "event_not_string",
        "The event name must be a string, not a number.",
    ),
    (
        {"type": "track", "userId": "u", "event": "Viewed", "properties": ["a"]},
        "properties_not_object",
        "properties must be an object, not a list.",
    ),
    (
        {"type": "identify", "userId": "u", "traits": "vip"},
        "traits_not_object",
        "traits must be an object, not a string.",
    ),
    (
        {"type": "page", "userId": "u", "name": ""},
        "name_not_string",
        "The page name must be a non-empty string, not an empty string.",
    ),
    (
        {"type": "screen", "userId": "u", "category": 3},
        "category_not_string",
        "The screen category must be a non-empty string, not a number.",
    ),
    (
        {"type": "track", "userId": "u", "event": "Viewed", "timestamp": "yesterday"},
        "invalid_timestamp",
        "timestamp is not an ISO 8601 date: 'yesterday'.",
    ),
    (
        {"type": "track", "userId": "u", "event": "Segment Consent Preference Updated"},
        "consent_categorypreferences_should_exist",
        "A 'Segment Consent Preference Updated' event needs a context.consent.categoryPreferences object.",
    ),
    (
        {
            "type": "track",
            "userId": "u",
            "event": "Viewed",
            "context": {"consent": {"categoryPreferences": []}},
        },
        "consent_categorypreferences_fields_should_be_object",
        "context.consent.categoryPreferences must be an object, not a list.",
    ),
    (
        {
            "type": "track",
            "userId": "u",
            "event": "V",
            "context": {"consent": {"categoryPreferences": {"ads": "no"}}},
        },
        "consent_categorypreferences_fields_should_be_bool",
        "Consent for 'ads' must be true or false, not a string.",
    ),
    (
        {"type": "track", "userId": "u", "event": "V", "context": {"consent": {"version": "v2"}}},
        "consent_version_should_be_number",
        "context.consent.version must be a number, not a string.",
    ),
    (
        {"type": "track", "userId": "u", "event": "V", "context": {"device": {"advertisingId": 1}}},
        "device_advertisingid_should_be_string",
        "context.device.advertisingId must be a string, not a number.",
    ),
    ("not a message", "bad_request", "A message must be a JSON object, not a string."),
    (
        {"type": "track", "userId": "u", "event": "V\u0000"},
        "bad_request",
        "The message contains a NUL character (\\u0000), which cannot be stored.",
    ),
    (
        {"type": "track", "userId": "u", "event": "V\ud800"},
        "bad_request",
        "The message contains text that is not valid Unicode (an unpaired surrogate).",
    ),
]


@pytest.mark.parametrize(("message", "code", "error_message"), INVALID, ids=[case[1] for case in INVALID])
def test_an_invalid_message_fails_on_ingest_with_its_code_and_the_rest_of_the_batch_is_stored(
    client, source, message, code, error_message
):
    answer = post(client, "/v1/batch", {"batch": [track(1), message, track(2)]}, key=source.write_key)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 2
    assert step_counts(source.id) == {("received", ""): 3, ("failed_on_ingest", code): 1}
    sample = Sample.objects.get(source_id=source.id, step="failed_on_ingest")
    assert (sample.reason_code, sample.error_message) == (code, error_message)
    stored_body = json.loads(json.dumps(message).replace("\\u0000", "\\ufffd").replace("\\ud800", "?"))
    assert sample.body == stored_body
    # Kept whole for event lookups, with its reason.
    assert rejected_messages(source.id) == [(code, error_message, stored_body)]


def test_a_message_with_nan_or_infinity_fails_and_is_sampled_with_null_in_their_place(client, source):
    message = b'{"type": "track", "userId": "u", "event": "V", "properties": {"a": NaN, "b": -Infinity}}'
    raw = b'{"batch": [' + message + b"]}"

    answer = post(client, "/v1/batch", None, key=source.write_key, raw=raw)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {("received", ""): 1, ("failed_on_ingest", "bad_request"): 1}
    sample = Sample.objects.get(source_id=source.id)
    assert sample.error_message == "The message contains NaN or Infinity, which are not JSON numbers."
    assert sample.body["properties"] == {"a": None, "b": None}


def test_every_failed_message_of_a_batch_is_counted_under_its_own_code(client, source):
    batch = [track(1), *(message for message, _, _ in INVALID)]

    post(client, "/v1/batch", {"batch": batch}, key=source.write_key)

    expected = {("received", ""): len(batch)}
    for _, code, _ in INVALID:
        expected[("failed_on_ingest", code)] = expected.get(("failed_on_ingest", code), 0) + 1
    assert step_counts(source.id) == expected
    assert Sample.objects.filter(source_id=source.id, step="failed_on_ingest").count() == len(INVALID)


def test_failed_messages_are_counted_under_their_type_name_and_app_version(client, source):
    message = {"type": "track", "event": "Checkout", "context": {"app": {"version": "1.0"}}}

    post(client, "/v1/batch", {"batch": [message]}, key=source.write_key)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT step, reason_code, event_type, event_name, app_version, count FROM delivery_rollup"
            " WHERE source_id = %s ORDER BY step",
            [source.id],
        )
        assert cursor.fetchall() == [
            ("failed_on_ingest", "no_user_anon_id", "track", "Checkout", "1.0", 1),
            ("received", "", "track", "Checkout", "1.0", 1),
        ]


def test_an_empty_batch_is_counted_as_one_failed_request(client, source):
    answer = post(client, "/v1/batch", {"batch": []}, key=source.write_key)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {("received", ""): 1, ("failed_on_ingest", "empty_batch"): 1}
    sample = Sample.objects.get(source_id=source.id)
    assert sample.error_message == "The batch request contained no messages."


def test_a_disabled_source_counts_every_message_as_failed_and_stores_none(client, db):
    source = make_source(make_workspace(), enabled=False)

    answer = post(client, "/v1/batch", {"batch": [track(1), track(2), {"bad": True}]}, key=source.write_key)

    # 200, so that clients do not retry for ever; the operator sees the messages on the source.
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert not Event.objects.filter(source_id=source.id).exists()
    assert step_counts(source.id) == {("received", ""): 3, ("failed_on_ingest", "source_disabled"): 3}
    assert Sample.objects.filter(source_id=source.id, error_message="The source is disabled.").count() == 3


# --- answers --------------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_400_and_counted_for_the_source_named_in_the_header(client, source):
    answer = post(client, "/v1/batch", None, key=source.write_key, raw=b"{batch: oops")

    assert answer.status_code == 400
    assert answer.json() == {
        "success": False,
        "code": "bad_request",
        "message": "The request body is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    }
    # One refused request, not an event: no step counts it.
    assert (refused_counts(source.id), step_counts(source.id)) == ({"bad_request": 1}, {})


def test_a_gzip_body_that_is_not_gzip_is_400(client, source):
    answer = client.post(
        "/v1/batch",
        data=b"plain text",
        content_type="application/json",
        headers={**auth(source.write_key), "Content-Encoding": "gzip"},
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "success": False,
        "code": "bad_request",
        "message": "The request body is not valid gzip: "
        "Error -3 while decompressing data: incorrect header check",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([track(1)], "The request body must be a JSON object, not a list."),
        ({"batch": {"0": track(1)}}, "batch must be a list of messages, not an object."),
    ],
)
def test_a_json_body_of_the_wrong_shape_is_400(client, source, body, message):
    answer = post(client, "/v1/batch", body, key=source.write_key)

    assert answer.status_code == 400
    assert answer.json() == {"success": False, "code": "bad_request", "message": message}


def test_a_missing_write_key_is_401(client, source):
    answer = post(client, "/v1/batch", {"batch": [track(1)]})

    assert answer.status_code == 401
    assert answer.json() == {
        "success": False,
        "code": "unknown_source",
        "message": "No write key: send it as the HTTP basic-auth user name, or as writeKey in the body.",
    }
    assert not Event.objects.exists()


@pytest.mark.parametrize("authorization", ["Basic not-base64!", "Bearer some-token", "Basic "])
def test_an_authorization_header_without_a_basic_write_key_counts_as_none(client, source, authorization):
    answer = client.post(
        "/v1/batch",
        data=json.dumps({"batch": [track(1)]}),
        content_type="application/json",
        headers={"Authorization": authorization},
    )

    assert answer.status_code == 401
    assert answer.json()["message"] == (
        "No write key: send it as the HTTP basic-auth user name, or as writeKey in the body."
    )


@pytest.mark.parametrize("where", ["header", "body"])
def test_an_unknown_write_key_is_401(client, source, where):
    body = {"batch": [track(1)]}
    if where == "body":
        body["writeKey"] = "no-such-key"
    answer = post(client, "/v1/batch", body, key="no-such-key" if where == "header" else None)

    assert answer.status_code == 401
    assert answer.json() == {
        "success": False,
        "code": "unknown_source",
        "message": "Unknown write key: no source has this write key.",
    }
    assert not Event.objects.exists()


def test_a_request_over_500_kb_is_413_and_counted(client, source):
    batch = [track(i, properties={"blob": "x" * 20_000}) for i in range(30)]  # each message is fine

    answer = post(client, "/v1/batch", {"batch": batch}, key=source.write_key)

    assert answer.status_code == 413
    assert answer.json()["code"] == "request_too_large"
    assert answer.json()["message"].endswith("over the 500 KB (512,000 bytes) limit; send smaller batches.")
    assert not Event.objects.exists()
    assert (refused_counts(source.id), step_counts(source.id)) == ({"request_too_large": 1}, {})


def test_a_request_bigger_than_django_reads_is_413_too(client, source):
    answer = post(client, "/v1/batch", None, key=source.write_key, raw=b"x" * 3_000_000)

    assert answer.status_code == 413
    assert answer.json()["message"] == (
        "The request body is 3,000,000 bytes or more, over the 500 KB (512,000 bytes) limit; "
        "send smaller batches."
    )


def test_a_gzipped_request_is_limited_by_its_size_once_unzipped(client, source):
    batch = [track(i, properties={"blob": "x" * 20_000}) for i in range(30)]

    answer = post(client, "/v1/batch", {"batch": batch}, key=source.write_key, gzipped=True)

    assert answer.status_code == 413
    assert answer.json()["message"] == (
        "The request body is 512,001 bytes or more, over the 500 KB (512,000 bytes) limit; "
        "send smaller batches."
    )


def test_a_single_message_over_32_kb_is_413_and_counted(client, source):
    message = {"userId": "u", "event": "Big", "messageId": "big-1", "properties": {"blob": "x" * 33_000}}

    answer = post(client, "/v1/track", message, key=source.write_key)

    assert answer.status_code == 413
    assert answer.json() == {
        "success": False,
        "code": "message_too_large",
        "message": "Every message in the request is over the 32 KB (32,768 bytes) limit for one message; "
        "none was stored.",
    }
    assert step_counts(source.id) == {("received", ""): 1, ("failed_on_ingest", "message_too_large"): 1}
    sample = Sample.objects.get(source_id=source.id)
    assert (sample.message_id, sample.event_name) == ("big-1", "Big")
    assert sample.error_message == "The message is 33,088 bytes, over the 32 KB (32,768 bytes) limit."
    # Kept for lookups without its body: only the fields it is found by.
    [(code, _, body)] = rejected_messages(source.id)
    assert code == "message_too_large" and body.pop("notKept").startswith("The message was 33,")
    assert body == {"userId": "u", "event": "Big", "messageId": "big-1", "type": "track"}


def test_an_oversized_message_in_a_batch_fails_alone_and_the_batch_is_accepted(client, source):
    # 413 would make the client drop the whole batch, losing the good messages with the big one.
    batch = [track(1), track(2, properties={"blob": "x" * 40_000})]

    answer = post(client, "/v1/batch", {"batch": batch}, key=source.write_key)

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 1
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "message_too_large"): 1}


def test_only_post_is_answered(client, source):
    assert client.get("/v1/batch").status_code == 405


# --- duplicates -----------------------------------------------------------------------------------


def test_a_repeated_message_id_is_stored_once_and_counted_as_duplicate(client, source):
    post(client, "/v1/batch", {"batch": [track(1), track(2), track(1)]}, key=source.write_key)
    post(client, "/v1/batch", {"batch": [track(2), track(3)]}, key=source.write_key)

    assert sorted(Event.objects.filter(source_id=source.id).values_list("message_id", flat=True)) == [
        "msg-1",
        "msg-2",
        "msg-3",
    ]
    assert step_counts(source.id) == {("received", ""): 3, ("duplicate", ""): 2}
    sample = Sample.objects.filter(source_id=source.id, step="duplicate").first()
    assert (
        sample.error_message == "This messageId was already received from this source in the last 24 hours."
    )


def test_the_same_message_id_from_another_source_is_not_a_duplicate(client, source):
    other = make_source(source.workspace, name="iOS app")

    post(client, "/v1/batch", {"batch": [track(1)]}, key=source.write_key)
    post(client, "/v1/batch", {"batch": [track(1)]}, key=other.write_key)

    assert Event.objects.count() == 2


def test_a_failed_message_does_not_make_its_message_id_seen(client, source):
    post(client, "/v1/batch", {"batch": [track(1, userId=None)]}, key=source.write_key)
    post(client, "/v1/batch", {"batch": [track(1)]}, key=source.write_key)

    assert Event.objects.filter(source_id=source.id).count() == 1
    assert step_counts(source.id) == {("received", ""): 2, ("failed_on_ingest", "no_user_anon_id"): 1}


@pytest.mark.parametrize(("hours_ago", "duplicate"), [(23, True), (25, False)])
def test_duplicates_are_dropped_within_24_hours_across_midnight(source, hours_ago, duplicate):
    now = dt.datetime.now(dt.UTC).replace(hour=5)  # yesterday's partition holds the earlier message
    earlier = now - dt.timedelta(hours=hours_ago)
    valid = validation.validate(track(1))

    ingest.store(source, [valid], earlier)
    receipt = ingest.store(source, [valid], now)

    assert receipt.duplicates == (1 if duplicate else 0)
    assert len(receipt.event_ids) == (0 if duplicate else 1)


# --- the tracking spec's semantics ----------------------------------------------------------------


def stored(source) -> dict:
    return Event.objects.get(source_id=source.id).payload


def test_batch_context_and_integrations_are_merged_into_each_message_key_by_key(client, source):
    body = {
        "batch": [
            track(1, context={"app": {"version": "2.3.0"}, "locale": "fr-FR"}, integrations={"All": False}),
        ],
        "context": {"library": {"name": "analytics-python"}, "locale": "en-US"},
        "integrations": {"Warehouse": True},
    }

    post(client, "/v1/batch", body, key=source.write_key)

    payload = stored(source)
    # The message's own keys win; the batch fills in the rest.
    assert payload["context"] == {
        "app": {"version": "2.3.0"},
        "locale": "fr-FR",
        "library": {"name": "analytics-python"},
    }
    assert payload["integrations"] == {"All": False, "Warehouse": True}


def test_the_server_sets_received_at_and_corrects_a_clients_clock_with_sent_at(client, source):
    # The client's clock runs an hour fast: it stamps the event and the send an hour ahead, 2 s apart.
    fast = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    happened, sent = fast - dt.timedelta(seconds=2), fast
    message = track(1, timestamp=iso(happened), sentAt=iso(sent), receivedAt="1999-01-01T00:00:00Z")

    post(client, "/v1/track", message, key=source.write_key)

    event = Event.objects.get(source_id=source.id)
    assert event.payload["receivedAt"] == iso(event.received_at)  # the client's is overwritten
    assert event.payload["originalTimestamp"] == iso(happened)  # the client's own time is kept
    assert event.timestamp == event.received_at - dt.timedelta(seconds=2)
    assert event.payload["timestamp"] == iso(event.timestamp)


def test_a_message_with_only_original_timestamp_gets_it_as_its_timestamp(client, source):
    message = {k: v for k, v in track(1).items() if k != "timestamp"} | {"originalTimestamp": NOW}

    post(client, "/v1/batch", {"batch": [message]}, key=source.write_key)

    event = Event.objects.get(source_id=source.id)
    assert event.timestamp == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert (event.payload["timestamp"], event.payload["originalTimestamp"]) == (NOW, NOW)


def test_an_empty_user_id_with_an_anonymous_id_is_accepted(client, source):
    message = track(1, userId="", anonymousId="anon-7")

    post(client, "/v1/batch", {"batch": [message]}, key=source.write_key)

    assert stored(source)["anonymousId"] == "anon-7"
    assert step_counts(source.id) == {("received", ""): 1}


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
