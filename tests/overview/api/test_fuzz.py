"""A seeded fuzz of the tracking API and the REST API with deep, huge and odd values — NUL characters,
lone surrogates, integers past 2^31, 2^63 and any float, 10,000-deep nesting, dates that overflow,
Unicode digits, empty and wrong JSON types. No answer may be a server error, and in mixed batches the
tracking API stores and counts the good messages exactly, each bad one failed on ingest with its code.
(test_schema.py's schemathesis run covers the schema's own shapes; this aims at the edges.)"""

import json
import random
from collections import Counter
from urllib.parse import quote

import pytest
from django.test import Client

from delivery.models import Event
from tests.delivery.test_ingest import auth, refused_counts, step_counts, track
from tests.overview.api.team import PUBLIC_URL, Team, make_team

SEED = 19
BATCHES = 80
FIGURE_REQUESTS = 200
CONFIG_REQUESTS = 200


def nested(levels: int, leaf: str = "1") -> str:
    return '{"a":' * levels + leaf + "}" * levels


DEEP_ARRAY = "[" * 10_000 + "]" * 10_000

# Query parameter values (sent percent-encoded as UTF-8, surrogates as the bytes a client would send).
ODD_TEXT = [
    "", " ", "\x00", "a\x00b", "\ud800", "²", "１２", "٣", "-1", "0", "1", str(2**31), str(2**63),
    "9" * 400, "1e400", "NaN", "null", "[]", "{}", "all", "custom", "x" * 2000, "%", "../..", "<b>",
    "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "9999-12-31T23:59:59.999999+00:00",
    "2025-02-30T00:00", "2025-01-01T25:00", "2025-01-01T00:00Z", "Europe/Paris", "Etc/GMT-14",
]  # fmt: skip
# JSON texts for body values: wrong types, huge and deep values, text PostgreSQL cannot hold.
ODD_JSON = [
    '""', '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"²"', '"' + "x" * 100_000 + '"', "0", "-1",
    str(2**31), str(2**63), str(2**64), "9" * 5000, "1e400", "-0.0", "1.5", "true", "null", "[]", "{}",
    DEEP_ARRAY, nested(150), nested(250), '{"\\u0000": 1}', '["\\ud800"]', '[{"action": "drop"}]',
    '{"type": ["track"], "conditions": [{"field": "\\u0000", "op": "eq", "value": 1}]}',
    '"0001-01-01T00:00+01:00"', '"9999-12-31T23:59-01:00"', '{"$ref": "#"}',
]  # fmt: skip
ODD_BODIES = ["", "[]", '"x"', "null", "{", DEEP_ARRAY, nested(5000), '{"\\u0000": 1}', "\x00"]

FIGURES = ["pipeline", "discards", "breakdown", "samples", "timeseries"]
FIGURE_PARAMS = ["range", "start", "end", "mapping", "step", "reason"]
STEPS = ["received", "failed_on_ingest", "filtered_at_destination", "failed_delivery", "delivered"]

CONFIG_FIELDS = {
    "workspaces": ["name"],
    "sources": ["workspace", "name", "enabled", "blocked_event_types", "tracking_plan", "common_schema",
                "block_unplanned_events", "block_schema_violations"],
    "destinations": ["workspace", "name", "kind", "endpoint", "settings", "credentials", "sources",
                     "batch_size", "max_retries", "enabled", "filters", "consent_categories",
                     "integration_name"],
    "mappings": ["name", "trigger", "fields", "enabled"],
    "alert-rules": ["kind", "destination", "source", "threshold", "min_volume", "channels",
                    "email_recipients", "slack_webhook_url", "muted"],
}  # fmt: skip


def query_string(params: dict[str, str]) -> str:
    return "&".join(f"{key}={quote(value.encode('utf-8', 'surrogatepass'))}" for key, value in params.items())


def plausible(team: Team, field: str) -> str:
    """A value that passes on its own, so that the odd ones reach the checks behind it."""
    values = {
        "workspace": team.acme.id, "destination": team.warehouse.id, "source": team.web.id,
        "sources": [team.web.id], "kind": "webhook", "endpoint": PUBLIC_URL, "threshold": 90,
        "min_volume": 10, "channels": ["in_app"], "batch_size": 50, "max_retries": 3, "enabled": True,
        "trigger": {"type": ["track"]}, "fields": {"email": "traits.email"}, "filters": [],
    }  # fmt: skip
    return json.dumps(values.get(field, "Fuzzed"))


@pytest.fixture
def team(transactional_db) -> Team:  # one failed statement must not end the transaction of the next
    return make_team()


def test_the_rest_api_and_pages_answer_odd_input_without_a_server_error(team, settings):
    # Hundreds of requests from one caller: without a per-caller limit, so that every one is answered.
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "user": None}}
    settings.ALLOW_WORKSPACE_CREATION = True  # so that the workspace bodies can be created, too
    rng = random.Random(SEED)
    api = team.api("owner")
    api.raise_request_exception = False
    browser = Client(raise_request_exception=False)
    browser.force_login(team.owner)
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []

    def check(what: str, response) -> None:
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            server_errors.append(f"{what} -> {response.status_code}")

    for _ in range(FIGURE_REQUESTS):
        params = {name: rng.choice(ODD_TEXT) for name in rng.sample(FIGURE_PARAMS, rng.randint(1, 4))}
        if rng.random() < 0.5:
            params["step"] = rng.choice(STEPS)
        query = query_string(params)
        figure = rng.choice(FIGURES)
        check(f"GET {figure}?{query}", api.get(f"/api/v1/destinations/{team.warehouse.id}/{figure}/?{query}"))
        if rng.random() < 0.25:
            page = rng.choice([f"destinations/{team.warehouse.id}", f"sources/{team.web.id}"])
            url = f"/w/{team.acme.slug}/{page}/?{query}&detail={rng.choice(['samples', 'breakdown'])}"
            check(f"page {url}", browser.get(url))
        if rng.random() < 0.1:
            incidents = query_string(
                {rng.choice(["status", "rule", "destination", "source"]): rng.choice(ODD_TEXT)}
            )
            check(f"GET incidents?{incidents}", api.get(f"/api/v1/incidents/?{incidents}"))

    for _ in range(CONFIG_REQUESTS):
        collection = rng.choice(list(CONFIG_FIELDS))
        urls = {
            "workspaces": ("/api/v1/workspaces/", None),
            "sources": ("/api/v1/sources/", f"/api/v1/sources/{team.web.id}/"),
            "destinations": ("/api/v1/destinations/", f"/api/v1/destinations/{team.warehouse.id}/"),
            "mappings": (
                f"/api/v1/destinations/{team.warehouse.id}/mappings/",
                f"/api/v1/destinations/{team.warehouse.id}/mappings/{team.orders.id}/",
            ),
            "alert-rules": ("/api/v1/alert-rules/", None),
        }[collection]
        fields = CONFIG_FIELDS[collection]
        values = {field: plausible(team, field) for field in fields}
        for field in rng.sample(fields, rng.randint(1, min(3, len(fields)))):
            values[field] = rng.choice(ODD_JSON)
        body = "{" + ",".join(f"{json.dumps(k)}: {v}" for k, v in values.items()) + "}"
        if rng.random() < 0.1:
            body = rng.choice(ODD_BODIES)
        method, url = ("PATCH", urls[1]) if urls[1] and rng.random() < 0.5 else ("POST", urls[0])
        check(
            f"{method} {url} {body[:200]!r}", api.generic(method, url, body, content_type="application/json")
        )

    assert server_errors == []
    assert statuses[200] and statuses[201] and statuses[400], statuses


# --- the tracking API ----------------------------------------------------------------------------


# Bad messages, as JSON text made from a good one (i), each with the code it must fail with. Nesting stays
# well under 1,000 levels: a body deeper than that cannot be read at all (BAD_BODIES), and one holding a
# NaN is read by Python's parser, whose limit is the interpreter's recursion limit.
def _with(i: int, old: str, new: str) -> str:
    text = json.dumps(track(i))
    assert old in text
    return text.replace(old, new, 1)


def _properties(i: int, properties: str) -> str:
    return _with(i, json.dumps({"total": 10 * i}), properties)


BAD_MESSAGES = [
    (lambda i, rng: _properties(i, nested(rng.randint(64, 600))), "nesting_too_deep"),
    (lambda i, rng: _properties(i, "[" * 500 + "]" * 500), "nesting_too_deep"),
    (lambda i, rng: _properties(i, '{"note": "a\\u0000b"}'), "bad_request"),
    (lambda i, rng: _properties(i, '{"\\u0000": 1}'), "bad_request"),
    (lambda i, rng: _properties(i, '{"note": "\\udfff"}'), "bad_request"),
    (lambda i, rng: _properties(i, '{"n": 1e400}'), "bad_request"),
    (lambda i, rng: _properties(i, '{"n": ' + "7" * 5000 + "}"), "bad_request"),
    (lambda i, rng: _properties(i, '{"n": NaN}'), "bad_request"),
    (lambda i, rng: _properties(i, "[1, 2]"), "properties_not_object"),
    (lambda i, rng: _with(i, f'"userId": "user-{i}"', '"userId": null'), "no_user_anon_id"),
    (lambda i, rng: _with(i, f'"userId": "user-{i}"', '"userId": ' + str(2**70)), "id_not_string"),
    (lambda i, rng: _with(i, '"event": "Order Completed"', '"event": ' + str(2**63)), "event_not_string"),
    (lambda i, rng: _with(i, '"type": "track"', '"type": ["track"]'), "unsupported_type"),
    (lambda i, rng: _with(i, NOW_JSON, '"9999-12-31T23:59-01:00"'), "invalid_timestamp"),
    (lambda i, rng: _with(i, NOW_JSON, '"0001-01-01T00:00+01:00"'), "invalid_timestamp"),
    (lambda i, rng: _with(i, NOW_JSON, '"²⁰²⁴-01-01"'), "invalid_timestamp"),
    (lambda i, rng: "[" * 500 + "]" * 500, "bad_request"),
    (lambda i, rng: '"' + "x" * 40_000 + '"', "bad_request"),
    (lambda i, rng: _properties(i, '{"blob": "' + "x" * 40_000 + '"}'), "message_too_large"),
]
NOW_JSON = json.dumps(track(1)["timestamp"])
# Whole bodies the tracking API refuses, with the answer and the code it is counted under.
BAD_BODIES = [
    (DEEP_ARRAY, 400, "nesting_too_deep"),
    ('{"batch": ' + nested(5000) + "}", 400, "nesting_too_deep"),
    ("", 400, "bad_request"),
    ("\x00", 400, "bad_request"),
    ('{"batch": {"a": 1}}', 400, "bad_request"),
    ('["not", "an", "object"]', 400, "bad_request"),
    ('{"batch": [' + ",".join([json.dumps(track(0))] * 20_000) + "]}", 413, "request_too_large"),
    ('{"batch": []}', 200, "empty_batch"),
]


def test_the_tracking_api_stores_good_messages_of_odd_batches_and_counts_the_bad_by_code(team):
    rng = random.Random(SEED)
    client = Client(raise_request_exception=False)
    headers = auth(team.web.write_key)
    expected: Counter[tuple[str, str]] = Counter()
    refusals: Counter[str] = Counter()
    good, sent = 0, 0
    server_errors: list[str] = []

    for round_number in range(BATCHES):
        if rng.random() < 0.15:
            body, status, code = rng.choice(BAD_BODIES)
            answer = client.post("/v1/batch", data=body.encode("utf-8", "surrogatepass"),
                                 content_type="application/json", headers=headers)  # fmt: skip
            assert answer.status_code == status, (body[:100], answer.content[:300])
            if status == 200:  # an empty batch is read: one message-less request failed on ingest
                expected[("received", "")] += 1
                expected[("failed_on_ingest", code)] += 1
            else:
                refusals[code] += 1  # a refused request: no event, no step counts it
            continue
        messages = []
        for _ in range(rng.randint(0, 5)):
            sent += 1
            messages.append(json.dumps(track(1, messageId=f"fuzz-{sent}", userId=f"user-{sent}")))
            good += 1
        for _ in range(rng.randint(1, 4)):
            sent += 1
            make, code = rng.choice(BAD_MESSAGES)
            messages.append(make(sent, rng).replace(f'"msg-{sent}"', f'"fuzz-{sent}"'))
            expected[("failed_on_ingest", code)] += 1
        rng.shuffle(messages)
        expected[("received", "")] += len(messages)
        body = '{"batch": [' + ",".join(messages) + "]}"
        answer = client.post(
            "/v1/batch", data=body.encode(), content_type="application/json", headers=headers
        )
        if answer.status_code >= 500:
            server_errors.append(f"round {round_number}: {answer.status_code}")
        elif good or answer.status_code != 413:  # every message too large answers 413, counted the same
            assert (answer.status_code, answer.json()) == (200, {"success": True}), round_number

    assert server_errors == []
    assert Event.objects.filter(source_id=team.web.id).count() == good
    assert step_counts(team.web.id) == dict(expected)
    assert refused_counts(team.web.id) == dict(refusals)
