"""The source service called directly: what a source's schema controls may be, and the exact
messages per field when they may not."""

from overview.configuration.sources import create_source, update_source
from tests.factories import make_source, make_workspace
from tests.overview.configuration.refused import field_errors


def test_a_new_source_keeps_each_blocked_type_once_in_order(db):
    acme = make_workspace("Acme")

    source = create_source(
        {"workspace": acme, "name": "iOS app", "blocked_event_types": ["screen", "page", "page"]}
    )

    assert (source.workspace, source.name, source.blocked_event_types) == (
        acme,
        "iOS app",
        ["page", "screen"],
    )
    assert len(source.write_key) == 32 and source.enabled is True


def test_every_bad_field_is_reported_at_once(db):
    acme = make_workspace("Acme")
    data = {
        "workspace": acme,
        "name": "App",
        "tracking_plan": {"Order Completed": {"type": "objekt"}},
        "common_schema": {"$ref": "https://example.com/schema.json"},
    }

    assert field_errors(create_source, data) == {
        "tracking_plan": [
            "The schema of 'Order Completed' is not a valid JSON Schema:"
            " 'objekt' is not valid under any of the given schemas"
        ],
        "common_schema": [
            "The common schema may only use local references ($ref: '#/...'),"
            " not 'https://example.com/schema.json'."
        ],
    }
    assert not acme.sources.exists()


def test_an_update_changes_only_what_it_names(db):
    source = make_source(make_workspace("Acme"), "Web app", blocked_event_types=["page"])

    update_source(source, {"name": "Storefront", "tracking_plan": {"Order Completed": {"type": "object"}}})

    source.refresh_from_db()
    assert (source.name, source.blocked_event_types) == ("Storefront", ["page"])
    assert source.tracking_plan == {"Order Completed": {"type": "object"}}


def test_a_source_stays_in_its_workspace_and_stores_only_what_postgresql_can(db):
    source = make_source(make_workspace("Acme"), "Web app")

    assert field_errors(update_source, source, {"workspace": make_workspace("Acme EU")}) == {
        "workspace": ["A source cannot move to another workspace."]
    }
    assert field_errors(update_source, source, {"tracking_plan": {"Order": {"description": "a\x00b"}}}) == {
        "tracking_plan": ["Order.description contains a NUL character."]
    }
    assert field_errors(update_source, source, {"tracking_plan": {"Order": "object"}}) == {
        "tracking_plan": ["The schema of 'Order' must be a JSON Schema object."]
    }


def test_allowed_origins_are_kept_as_a_browser_sends_them_and_others_are_refused(db):
    source = make_source(make_workspace("Acme"))

    update_source(
        source,
        {"allowed_origins": ["https://Shop.Example:443/", "http://localhost:3000", "http://[::1]:8080"]},
    )

    source.refresh_from_db()
    assert source.allowed_origins == ["http://[::1]:8080", "http://localhost:3000", "https://shop.example"]
    for bad in ("shop.example", "https://shop.example/checkout", "ftp://shop.example", "https://shop:port"):
        message = field_errors(update_source, source, {"allowed_origins": [bad]})["allowed_origins"][0]
        assert message.startswith(f"{bad!r} is not a web origin")
