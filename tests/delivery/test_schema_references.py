# ruff: noqa: E501 -- the exact error messages read best one a line
"""A tracking plan may refer to nothing outside itself (issue #19): configuration refuses every reference
that is not to a place inside the schema and every `$schema` that is not a dialect the validator ships,
and routing, given such a schema straight from the database, fetches nothing — not from a local HTTP
server, not from a file — and routes the event as if the schema were not there, saying so in the log."""

import logging

import pytest
from django.db import connection

from delivery import routing
from delivery.models import Sample, Source
from delivery.schema_controls import DIALECTS, InvalidSchema, check_schema, controls_from_json
from tests.delivery.test_ingest import step_counts, track
from tests.delivery.test_routing import ENDPOINT, outcome_counts, stored
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace
from tests.overview.api.team import client_for

MARKER = "MARKER-7f3c-outside-content"
OUTSIDE = {"const": MARKER}  # what the fetched document would make the error message (and sample) say
DRAFT_2019 = "https://json-schema.org/draft/2019-09/schema"
KNOWN = ", ".join(repr(uri) for uri in DIALECTS)


def referring(keyword: str, uri: str) -> dict:
    """A schema of the whole message whose only way to mean anything is the document at `uri`."""
    if keyword == "$ref":
        return {"type": "object", "properties": {"properties": {"$ref": uri}}}
    if keyword == "$dynamicRef":
        return {"$dynamicRef": uri}
    if keyword == "$recursiveRef":
        return {"$schema": DRAFT_2019, "$recursiveRef": uri}
    return {"$schema": uri, "required": ["no-such-field"]}  # $schema


def refused(keyword: str, uri: str, what: str = "The schema of 'Order Completed'") -> str:
    if keyword == "$schema":
        return f"{what} names a JSON Schema dialect that is not known here ($schema: {uri!r}); use one of {KNOWN}."
    return f"{what} may only use local references ({keyword}: '#/...'), not {uri!r}."


KEYWORDS = ["$ref", "$dynamicRef", "$recursiveRef", "$schema"]


@pytest.fixture
def outside_file(tmp_path):
    path = tmp_path / "outside.json"
    path.write_text(f'{{"const": "{MARKER}"}}')
    return path.as_uri()


@pytest.fixture
def outside_url(httpserver):
    httpserver.expect_request("/schema.json").respond_with_json(OUTSIDE)
    return httpserver.url_for("/schema.json")


@pytest.fixture
def owner_api(db):
    owner = make_user()
    workspace = make_workspace(owner=owner)
    return client_for(owner), workspace, make_source(workspace, tracking_plan={"Signed Up": {}})


# --- configuration time ---------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_the_api_refuses_a_tracking_plan_that_refers_outside_itself(owner_api, keyword):
    api, _, source = owner_api
    for uri in ("http://127.0.0.1:8080/latest/meta-data/", "file:///etc/passwd"):
        plan = {"Order Completed": referring(keyword, uri)}

        response = api.patch(f"/api/v1/sources/{source.id}/", {"tracking_plan": plan}, format="json")

        assert (response.status_code, response.json()) == (400, {"tracking_plan": [refused(keyword, uri)]})
    assert Source.objects.get(id=source.id).tracking_plan == {"Signed Up": {}}


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_a_new_source_with_a_common_schema_referring_outside_is_not_created(owner_api, keyword):
    api, workspace, _ = owner_api
    uri = "http://169.254.169.254/latest/meta-data/"
    body = {"workspace": workspace.id, "name": "iOS app", "common_schema": referring(keyword, uri)}

    response = api.post("/api/v1/sources/", body, format="json")

    assert (response.status_code, response.json()) == (
        400,
        {"common_schema": [refused(keyword, uri, "The common schema")]},
    )
    assert not Source.objects.filter(name="iOS app").exists()


REFUSALS = [
    # A reference deep in the document, under keywords or in a nested schema, is refused as well.
    ({"$defs": {"a": {"items": [{"$ref": "https://example.com/a"}]}}}, "The plan may only use local references ($ref: '#/...'), not 'https://example.com/a'."),
    ({"properties": {"p": {"$dynamicRef": "other.json#meta"}}}, "The plan may only use local references ($dynamicRef: '#/...'), not 'other.json#meta'."),
    ({"$defs": {"a": {"$schema": "https://json-schema.org/draft/next/schema"}}}, f"The plan names a JSON Schema dialect that is not known here ($schema: 'https://json-schema.org/draft/next/schema'); use one of {KNOWN}."),
    ({"$schema": 4}, f"The plan names a JSON Schema dialect that is not known here ($schema: 4); use one of {KNOWN}."),
    # "#..." that is not in the document: under a nested $id, "#/x" means that $id's document.
    ({"$ref": "#/$defs/missing"}, "The plan refers to something it does not contain ($ref: '#/$defs/missing')."),
    ({"$defs": {"a": {"$id": "http://127.0.0.1:9/a", "$ref": "#/b"}}}, "The plan refers to something it does not contain ($ref: '#/b')."),
    ({"$dynamicRef": "#meta"}, "The plan refers to something it does not contain ($dynamicRef: '#meta')."),
    # A loop would stop routing for every source whose events share the batch.
    ({"$ref": "#"}, "The plan refers to itself without end, or nests too deeply to check."),
    ({"$schema": DRAFT_2019, "$recursiveRef": "#"}, "The plan refers to itself without end, or nests too deeply to check."),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "message"), REFUSALS)
def test_check_schema_says_why_a_reference_is_refused(schema, message):
    with pytest.raises(InvalidSchema) as refusal:
        check_schema(schema, "The plan")

    assert str(refusal.value) == message


INTERNAL = {
    "type": "object",
    "$defs": {
        "total": {"type": "integer", "minimum": 0},
        "currency": {"$anchor": "currency", "enum": ["EUR", "USD"]},
        "item": {"$dynamicAnchor": "item", "type": "object", "required": ["sku"]},
    },
    "properties": {
        "properties": {
            "type": "object",
            "required": ["total"],
            "properties": {
                "total": {"$ref": "#/$defs/total"},
                "currency": {"$ref": "#currency"},
                "items": {"type": "array", "items": {"$dynamicRef": "#item"}},
            },
        }
    },
}
RECURSIVE = {  # draft 2019-09: a category tree of any depth
    "$schema": DRAFT_2019,
    "$recursiveAnchor": True,
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$recursiveRef": "#"}},
    },
}


def test_the_api_keeps_references_inside_the_schema(owner_api):
    api, _, source = owner_api
    plan = {"Order Completed": INTERNAL, "Category Viewed": RECURSIVE}

    response = api.patch(f"/api/v1/sources/{source.id}/", {"tracking_plan": plan}, format="json")

    assert response.status_code == 200, response.json()
    assert Source.objects.get(id=source.id).tracking_plan == plan
    assert check_schema({**INTERNAL, "$schema": "https://json-schema.org/draft/2020-12/schema#"}, "x")
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"n": {"type": "number"}},
        "properties": {"total": {"$ref": "#/definitions/n"}},
    }
    assert check_schema(draft7, "x").__name__ == "Draft7Validator"


# --- routing time ----------------------------------------------------------------------------------


def pipeline_rows_text() -> str:
    """Every outcome and sample row as JSON text: what the dashboard, the API and the samples show."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(string_agg(row_to_json(o)::text, ''), '') FROM delivery_outcome o"
            f" UNION ALL SELECT coalesce(string_agg(row_to_json(s)::text, ''), '') FROM {Sample._meta.db_table} s"
        )
        return "".join(text for (text,) in cursor.fetchall())


@pytest.mark.parametrize("target", ["http", "file"])
@pytest.mark.parametrize("keyword", KEYWORDS)
def test_routing_fetches_nothing_a_stored_schema_refers_to_and_routes_the_event(
    db, httpserver, outside_url, outside_file, caplog, keyword, target
):
    uri = outside_url if target == "http" else outside_file
    workspace = make_workspace()
    # Written straight to the database, around configuration's checks; blocking on, so that a fetched
    # document would drop the event with the document's content in the sample's message.
    source = make_source(
        workspace,
        tracking_plan={"Order Completed": referring(keyword, uri)},
        block_unplanned_events=True,
        block_schema_violations=True,
    )
    destination = make_destination(workspace, ENDPOINT, sources=[source])
    mapping = make_mapping(destination)
    controls_from_json.cache_clear()  # compiled here, so that its warning is this test's
    caplog.set_level(logging.WARNING, logger="delivery.schema_controls")

    assert routing.route_events(stored(source, [track(1)])) == 1

    assert httpserver.log == []
    assert MARKER not in pipeline_rows_text()
    assert outcome_counts(destination.id) == {(mapping.id, "queued", ""): 1}
    assert step_counts(source.id) == {("received", ""): 1}
    assert not Sample.objects.filter(source_id=source.id, step="filtered_at_source").exists()
    assert f"ignoring a JSON Schema that cannot be used: {refused(keyword, uri)}" in caplog.text


def test_routing_still_checks_events_against_references_inside_the_schema(db):
    workspace = make_workspace()
    source = make_source(workspace, tracking_plan={"Order Completed": INTERNAL}, block_schema_violations=True)
    destination = make_destination(workspace, ENDPOINT, sources=[source])
    mapping = make_mapping(destination)
    good = track(1, properties={"total": 10, "currency": "EUR", "items": [{"sku": "A-1"}]})
    negative = track(2, properties={"total": -1})
    dollars = track(3, properties={"total": 1, "currency": "GBP"})
    no_sku = track(4, properties={"total": 1, "items": [{}]})

    routing.route_events(stored(source, [good, negative, dollars, no_sku]))

    assert outcome_counts(destination.id) == {(mapping.id, "queued", ""): 1}
    assert step_counts(source.id) == {("received", ""): 4, ("filtered_at_source", "schema_violation"): 3}
    errors = dict(
        Sample.objects.filter(source_id=source.id, step="filtered_at_source").values_list(
            "message_id", "error_message"
        )
    )
    breaks = "'Order Completed' breaks its schema in the tracking plan: "
    assert errors == {
        "msg-2": breaks + "$.properties.total: -1 is less than the minimum of 0",
        "msg-3": breaks + "$.properties.currency: 'GBP' is not one of ['EUR', 'USD']",
        "msg-4": breaks + "$.properties.items[0]: 'sku' is a required property",
    }


def test_a_stored_schema_that_loops_for_some_events_does_not_stop_routing(db, caplog):
    # Passes the empty-message probe, loops only for a message with "loop": checked against nothing then.
    looping = {"if": {"required": ["loop"]}, "then": {"$ref": "#"}}
    workspace = make_workspace()
    source = make_source(workspace, common_schema=looping, block_schema_violations=True)
    destination = make_destination(workspace, ENDPOINT, sources=[source])
    mapping = make_mapping(destination)
    check_schema(looping, "The common schema")  # configuration would have taken it too

    assert routing.route_events(stored(source, [track(1, loop=True), track(2)])) == 2

    assert outcome_counts(destination.id) == {(mapping.id, "queued", ""): 2}
    assert (
        "a JSON Schema could not check a message, so it checks nothing for it: RecursionError" in caplog.text
    )
