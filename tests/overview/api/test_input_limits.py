"""Odd input to the REST API and the overview pages — Unicode digits, ids past bigint, dates that
overflow once their offset is applied, NUL characters, integers past their column, bodies nested too
deeply — each answers 400 with a message that says what was wrong, never a server error."""

import pytest
from django.test import Client

from overview.api.parsers import MAX_DEPTH
from tests.overview.api.team import PUBLIC_URL, client_for
from tests.overview.page_text import text
from tests.overview.story import make_story

PICK = "give the id of one of this destination's mappings."
OUTSIDE = "is outside the dates a window can have (years 1 to 9999 in UTC)."
NUL_REASON = "The reason parameter contains a NUL character (%00), which no reason has."
TOO_DEEP = f"JSON parse error - the body nests objects and arrays more than {MAX_DEPTH} levels deep."


@pytest.fixture
def story(transactional_db):  # a failed statement must not end the test's transaction for the next call
    return make_story()


@pytest.fixture
def api(story):
    return client_for(story.user)


def nested(levels: int) -> str:
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


FIGURE_CASES = [
    ("pipeline", "mapping=%C2%B2", f"Unknown mapping '²': {PICK}"),
    ("pipeline", "mapping=%EF%BC%91", f"Unknown mapping '１': {PICK}"),
    ("pipeline", "mapping=9223372036854775808",
     "Unknown mapping 9223372036854775808: this destination has no mapping with that id."),
    ("pipeline", "mapping=%00", f"Unknown mapping '\\x00': {PICK}"),
    ("pipeline", "start=0001-01-01T00:00%2B01:00&end=2025-01-01T00:00",
     f"Start '0001-01-01T00:00+01:00' {OUTSIDE}"),
    ("timeseries", "start=2025-01-01T00:00&end=9999-12-31T23:59-01:00",
     f"End '9999-12-31T23:59-01:00' {OUTSIDE}"),
    ("pipeline", "start=%00&end=%00",
     "Start '\\x00' is not an ISO 8601 date and time, e.g. 2025-03-01T14:00."),
    ("breakdown", "step=failed_on_ingest&reason=%00", NUL_REASON),
    ("samples", "step=failed_delivery&reason=x%00y", NUL_REASON),
]  # fmt: skip


@pytest.mark.parametrize(("figure", "query", "message"), FIGURE_CASES)
def test_odd_figure_parameters_answer_400_with_a_message(api, story, figure, query, message):
    response = api.get(f"/api/v1/destinations/{story.destination.id}/{figure}/?{query}")

    assert (response.status_code, response.json()) == (400, {"detail": message})


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("rule=9223372036854775808",
         {"rule": ["Ensure this value is less than or equal to 9223372036854775807."]}),
        ("source=%C2%B2", {"source": ["A valid integer is required."]}),
        ("status=%00", {"status": ['"\x00" is not a valid choice.']}),
    ],
)  # fmt: skip
def test_odd_incident_filters_answer_400_with_field_errors(api, query, errors):
    response = api.get(f"/api/v1/incidents/?{query}")

    assert (response.status_code, response.json()) == (400, errors)


@pytest.mark.parametrize("min_volume", [2**31, 2**63, 10**30])
def test_a_min_volume_past_its_integer_column_is_400(api, story, min_volume):
    rule = {
        "kind": "delivery_rate",
        "destination": story.destination.id,
        "threshold": 90,
        "min_volume": min_volume,
    }

    response = api.post("/api/v1/alert-rules/", rule, format="json")

    assert (response.status_code, response.json()) == (
        400,
        {"min_volume": ["Ensure this value is less than or equal to 2147483647."]},
    )


def test_the_largest_min_volume_the_column_holds_is_saved(api, story):
    rule = {
        "kind": "delivery_rate",
        "destination": story.destination.id,
        "threshold": 90,
        "min_volume": 2**31 - 1,
    }

    response = api.post("/api/v1/alert-rules/", rule, format="json")

    assert response.status_code == 201
    assert response.json()["min_volume"] == 2**31 - 1


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 950, 100_000])
@pytest.mark.parametrize("where", ["destination settings", "source creation", "token"])
def test_a_body_nested_too_deeply_is_400(api, story, levels, where):
    url, body = {
        "destination settings": (f"/api/v1/destinations/{story.destination.id}/", '{"settings": %s}'),
        "source creation": ("/api/v1/sources/", '{"name": "Deep", "tracking_plan": %s}'),
        "token": ("/api/v1/token/", '{"username": %s}'),
    }[where]
    method = "PATCH" if where == "destination settings" else "POST"

    response = api.generic(method, url, body % nested(levels - 1), content_type="application/json")

    assert (response.status_code, response.json()) == (400, {"detail": TOO_DEEP})


def test_a_body_at_the_nesting_limit_is_read(api, story):
    body = f'{{"settings": {nested(MAX_DEPTH - 1)}}}'

    response = api.generic(
        "PATCH", f"/api/v1/destinations/{story.destination.id}/", body, content_type="application/json"
    )

    assert response.status_code == 200


def test_a_string_with_nul_in_a_configuration_field_is_400(api, story):
    response = api.patch(
        f"/api/v1/destinations/{story.destination.id}/",
        {"name": "Hook\x00", "endpoint": PUBLIC_URL},
        format="json",
    )

    assert (response.status_code, response.json()) == (400, {"name": ["Null characters are not allowed."]})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?mapping=%C2%B2",
         "Unknown mapping '²': give the id of one of this destination's mappings. Showing all mappings."),
        ("?start=0001-01-01T00:00%2B01:00&end=2025-01-01T00:00",
         f"Start '0001-01-01T00:00+01:00' {OUTSIDE} Showing the last 24 hours."),
        ("?start=2025-01-01T00:00&end=9999-12-31T23:59-01:00",
         f"End '9999-12-31T23:59-01:00' {OUTSIDE} Showing the last 24 hours."),
        ("?step=failed_on_ingest&reason=%00", f"{NUL_REASON} Showing the step without it."),
        ("?step=failed_delivery&reason=%00&detail=samples", f"{NUL_REASON} Showing the step without it."),
    ],
)  # fmt: skip
def test_odd_page_parameters_are_shown_as_a_problem_on_a_400_page(story, query, message):
    client = Client()
    client.force_login(story.user)

    for path in (f"destinations/{story.destination.id}", f"sources/{story.web.id}"):
        if path.startswith("sources") and ("mapping" in query or "failed_delivery" in query):
            continue  # a source's overview has no mappings and no delivery steps
        response = client.get(f"/w/{story.workspace.slug}/{path}/{query}")

        assert response.status_code == 400
        assert message in text(response)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "JSON parse error - the number 1e400 is out of range"),
        ("-Infinity", "JSON parse error - -Infinity is not a JSON number"),
        ("NaN", "JSON parse error - NaN is not a JSON number"),
    ],
)
def test_a_number_out_of_a_floats_range_is_400_wherever_it_is(api, story, value, message):
    for body in (f'{{"workspace": {value}, "name": "Web"}}', f'{{"threshold": {value}}}'):
        response = api.generic("POST", "/api/v1/sources/", body, content_type="application/json")

        assert (response.status_code, response.json()) == (400, {"detail": message})


def test_a_min_volume_past_its_column_in_the_alert_rule_form_is_a_form_error(story):
    client = Client()
    client.force_login(story.user)
    tab = f"/w/{story.workspace.slug}/destinations/{story.destination.id}/alerts/"

    response = client.post(tab, {"threshold": "95", "min_volume": str(2**31), "channels": ["in_app"]})

    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 2147483647." in text(response)
    assert not story.destination.alert_rules.exists()
