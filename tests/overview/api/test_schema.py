"""The OpenAPI schema at /api/schema/: what it promises, the docs that render it from our own static files,
and a schemathesis run over every operation that must find no server error."""

from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode

from overview.api import tokens
from overview.models import AlertRule
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

EXAMPLES_PER_OPERATION = 8


def test_the_schema_describes_the_configuration_contract(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/v1/workspaces/",
        "/api/v1/sources/",
        "/api/v1/sources/{id}/",
        "/api/v1/destinations/",
        "/api/v1/destinations/{id}/",
        "/api/v1/destinations/{destination_id}/mappings/",
        "/api/v1/destinations/{destination_id}/mappings/{mapping_id}/",
        "/api/v1/alert-rules/",
        "/api/v1/alert-rules/{id}/",
        "/api/v1/incidents/",
        "/api/v1/incidents/{id}/",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/sources/{id}/"]) - {"parameters"} == {"get", "patch", "delete"}  # no PUT
    components = schema["components"]["schemas"]
    assert "credentials" in components["PatchedDestinationRequest"]["properties"]
    assert "credentials" not in components["Destination"]["properties"]
    assert "write_key" not in components["SourceRequest"]["properties"]
    assert components["Source"]["properties"]["write_key"]["readOnly"] is True
    assert "slack_webhook_url" not in components["AlertRule"]["properties"]
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }


def test_the_api_docs_are_served_from_our_own_static_files(client, db):
    client.force_login(make_user())
    page = client.get("/api/schema/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn.jsdelivr.net" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    bundle = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    redoc = client.get("/api/schema/redoc/").content.decode()
    assert "cdn.jsdelivr.net" not in redoc and "/static/drf_spectacular_sidecar/redoc/" in redoc


@pytest.fixture
def fuzz_target(live_server, settings) -> dict:
    """A workspace with one of everything, owned by the token's user, and ids to aim some requests at."""
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    owner = make_user("fuzzer")
    workspace = make_workspace("Fuzzed", owner=owner)
    source = make_source(workspace, "Web")
    destination = make_destination(workspace, "https://hooks.example.com/in", name="Hook", sources=[source])
    mapping = make_mapping(destination, "All")
    rule = AlertRule.objects.create(
        workspace=workspace, kind="delivery_rate", destination=destination, threshold=90, channels=["in_app"]
    )
    return {
        "headers": {"Authorization": f"Token {tokens.issue(owner)}"},
        "ids": {
            "sources": source.id,
            "destinations": destination.id,
            "alert-rules": rule.id,
            "workspaces": workspace.id,
            "incidents": 1,
        },
        "mapping": mapping.id,
    }


def aim_at_real_rows(case, fuzz_target: dict):
    """Point a generated body's references at rows the caller may use, so creations can succeed."""
    if isinstance(case.body, dict):
        ids = fuzz_target["ids"]
        real = {"workspace": ids["workspaces"], "destination": ids["destinations"], "source": ids["sources"]}
        for key, value in real.items():
            if key in case.body:
                case.body[key] = value
        if "sources" in case.body:
            case.body["sources"] = [ids["sources"]]
    return case


def real_ids(path: str, fuzz_target: dict) -> dict:
    """Path parameters that point at objects that exist, so bodies are validated against real rows."""
    ids = fuzz_target["ids"]
    collection = path.split("/")[3]
    fixed = {}
    if "{destination_id}" in path:
        fixed["destination_id"] = ids["destinations"]
    if "{mapping_id}" in path:
        fixed["mapping_id"] = fuzz_target["mapping"]
    if "{id}" in path:
        fixed["id"] = ids.get(collection, 1)
    return fixed


@pytest.mark.e2e
def test_schemathesis_finds_no_server_error(fuzz_target, live_server):
    headers = fuzz_target["headers"]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", headers=headers)
    session = requests.Session()
    server_errors: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        path, method = operation.path, operation.method.upper()
        strategies = [operation.as_strategy(mode) for mode in GenerationMode]
        if method == "POST":
            aimed = operation.as_strategy(GenerationMode.POSITIVE)
            strategies.append(aimed.map(lambda case: aim_at_real_rows(case, fuzz_target)))
        # Deletes keep random ids, so that the real rows stay for the other operations.
        if method != "DELETE" and "{" in path:
            fixed = real_ids(path, fuzz_target)
            strategies += [operation.as_strategy(mode, path_parameters=fixed) for mode in GenerationMode]

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def call(case) -> None:
            response = case.call(base_url=live_server.url, session=session, headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                where = f"{case.method} {case.formatted_path}"
                server_errors.append(f"{where} -> {response.status_code}: {case.body!r}")

        call()

    assert server_errors == []
    # The run reached real rows and real validation, not only 404s.
    assert statuses[200] and statuses[201] and statuses[400] and statuses[404]
