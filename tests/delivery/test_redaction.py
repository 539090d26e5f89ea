"""Secrets never reach the stored samples: a destination that echoes the request's Authorization header
and credentials back shows viewers [redacted] instead, in the answer, the error and what was sent."""

import json

from werkzeug import Response

from delivery import batching, recording
from delivery.redaction import REDACTED, redact, secret_values
from tests.delivery.test_delivery import queue_events, samples, setup_destination, track

BEARER = "sk-live-echo-4d2f9a7c"


def echo(request) -> Response:
    """A careless destination: it answers with the request's headers and body."""
    body = {
        "ok": True,
        "you_sent": {"authorization": request.headers.get("Authorization", ""), "x_api_key": "k-123456"},
        "note": f"key {BEARER} accepted; retry with ?api_key={BEARER}&v=2",
        "echo": request.get_json(),
    }
    return Response(json.dumps(body), status=200, content_type="application/json")


def test_an_echoing_destination_shows_no_credentials_in_its_samples(transactional_db, httpserver, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    recording.OFFERED.clear()
    httpserver.expect_request("/hook").respond_with_handler(echo)
    destination, mapping = setup_destination(
        httpserver.url_for("/hook"), credentials={"headers": {"Authorization": f"Bearer {BEARER}"}}
    )
    # An event that carries the destination's own key somewhere in its properties, too.
    queue_events(destination, mapping, [track(1, properties={"comment": f"pasted {BEARER} here"})])

    batching.deliver_due(destination.id, mapping.id)

    [sample] = samples(destination, "delivered")
    assert sample["status"] == 200
    stored = json.dumps(sample)
    assert BEARER not in stored and "k-123456" not in stored
    answer = sample["response"]["body"]
    assert answer["you_sent"] == {"authorization": REDACTED, "x_api_key": REDACTED}
    assert answer["note"] == f"key {REDACTED} accepted; retry with ?api_key={REDACTED}&v=2"
    assert sample["sent"]["properties"] == {"comment": f"pasted {REDACTED} here"}
    # The request itself went out with the real header: only what is stored is redacted.
    [request] = [entry[0] for entry in httpserver.log]
    assert request.headers["Authorization"] == f"Bearer {BEARER}"


def test_known_shapes_are_redacted_and_json_stays_json():
    text = json.dumps(
        {
            "Authorization": "Basic c2l0ZS0xMjM6YXBpLWtleS00NTY=",
            "headers": {"X-Api-Key": "abc123", "Cookie": "session=zzz"},
            "access_token": "ya29.a0Af",
            "trace": "Authorization: Bearer eyJhbGciOi.payload.sig",
            "password": 'with "quotes" inside',
            "total_tokens": 42,
            "plan": "pro",
        }
    )
    assert json.loads(redact(text)) == {
        "Authorization": REDACTED,
        "headers": {"X-Api-Key": REDACTED, "Cookie": REDACTED},
        "access_token": REDACTED,
        "trace": f"Authorization: Bearer {REDACTED}",
        "password": REDACTED,
        "total_tokens": 42,
        "plan": "pro",
    }
    assert redact("Token count was 3; Basic plan") == "Token count was 3; Basic plan"  # prose stays


def test_the_destinations_own_credential_values_are_found_wherever_they_appear():
    credentials = {"site_id": "site-123", "api_key": 'api"key-456', "region": "EU"}
    assert secret_values(credentials) == ['api"key-456', "site-123"]  # "EU" is too short to be a secret
    text = json.dumps({"message": 'unknown site site-123 for key api"key-456', "region": "EU"})
    assert json.loads(redact(text, secret_values(credentials))) == {
        "message": f"unknown site {REDACTED} for key {REDACTED}",
        "region": "EU",
    }
