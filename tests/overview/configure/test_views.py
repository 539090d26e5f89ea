"""The configuration pages as operators use them: owners set up sources, destinations and mappings
without the admin; viewers read; other workspaces' pages do not exist for them."""

import re

from delivery.models import Destination, Mapping, Source
from overview.api import tokens
from overview.models import ApiToken
from tests.factories import make_destination, make_source
from tests.overview.page_text import text


def test_an_owner_creates_a_source_and_gets_its_write_key_and_a_snippet(acme, client):
    client.force_login(acme["owner"])
    slug = acme["workspace"].slug
    response = client.post(
        f"/w/{slug}/settings/sources/new/",
        {"name": "Checkout app", "enabled": "on", "blocked_event_types": ["screen"], "tracking_plan": ""},
    )
    source = Source.objects.get(name="Checkout app")
    assert response.status_code == 302 and response["Location"] == f"/w/{slug}/settings/sources/{source.id}/"
    assert (source.enabled, source.blocked_event_types, source.tracking_plan) == (True, ["screen"], {})

    page = client.get(response["Location"])
    content = page.content.decode()
    assert f'<code id="write-key">{source.write_key}</code>' in content
    assert f"analytics.write_key = &#x27;{source.write_key}&#x27;" in content
    assert "analytics.host = &#x27;http://testserver&#x27;" in content
    assert "Source “Checkout app” created. Send events with its write key." in text(page)


def test_a_bad_tracking_plan_is_refused_with_the_apis_message(acme, client):
    client.force_login(acme["owner"])
    response = client.post(
        f"/w/{acme['workspace'].slug}/settings/sources/new/",
        {"name": "App", "tracking_plan": '{"Order Completed": {"type": "objekt"}}'},
    )
    assert response.status_code == 200 and not Source.objects.exists()
    assert (
        "The schema of 'Order Completed' is not a valid JSON Schema:"
        " 'objekt' is not valid under any of the given schemas" in text(response)
    )
    not_json = client.post(
        f"/w/{acme['workspace'].slug}/settings/sources/new/", {"name": "App", "tracking_plan": "{"}
    )
    assert "Enter a valid JSON." in text(not_json)


def test_destination_credentials_are_never_shown_and_blank_keeps_them(acme, client, settings):
    client.force_login(acme["owner"])
    slug = acme["workspace"].slug
    web = make_source(acme["workspace"], "Web app")
    response = client.post(
        f"/w/{slug}/settings/destinations/new/",
        {
            "name": "Customer.io",
            "kind": "customerio",
            "endpoint": "https://track.customer.io/api/v2/batch",
            "sources": [str(web.id)],
            "enabled": "on",
            "batch_size": "50",
            "max_retries": "6",
            "credentials": '{"site_id": "site-1", "api_key": "cio-very-secret"}',
            "settings": '{"region": "US"}',
            "filters": '[{"action": "drop", "if": {"type": "page"}}]',
            "consent_categories": "analytics, marketing",
        },
    )
    destination = Destination.objects.get(name="Customer.io")
    assert response.status_code == 302
    assert destination.credentials == {"site_id": "site-1", "api_key": "cio-very-secret"}
    assert destination.consent_categories == ["analytics", "marketing"]
    assert list(destination.sources.all()) == [web]

    page = client.get(response["Location"])
    assert "cio-very-secret" not in page.content.decode() and "site-1" not in page.content.decode()
    assert "Credentials are set: api_key , site_id ." in text(page)
    # Both ways of writing a filter rule are explained where the rules are typed.
    assert "if is shorthand for eq conditions" in text(page) and '"conditions": [' in page.content.decode()

    edit = {
        "name": "Customer.io (US)",
        "kind": "customerio",
        "endpoint": "https://track.customer.io/api/v2/batch",
        "batch_size": "50",
        "max_retries": "6",
        "credentials": "",
        "filters": "",
    }
    assert client.post(response["Location"], edit).status_code == 302
    destination.refresh_from_db()
    assert destination.name == "Customer.io (US)"
    assert destination.credentials == {"site_id": "site-1", "api_key": "cio-very-secret"}  # kept

    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    refused = client.post(response["Location"], {**edit, "endpoint": "http://10.0.0.8/batch"})
    assert refused.status_code == 200
    assert (
        "10.0.0.8 resolves to 10.0.0.8, a loopback, private, link-local or reserved address;"
        " this deployment does not deliver to those." in text(refused)
    )


def test_an_owner_adds_a_mapping_with_a_trigger(acme, client):
    client.force_login(acme["owner"])
    slug = acme["workspace"].slug
    hook = make_destination(acme["workspace"], "http://127.0.0.1:9/hook", name="Warehouse")
    response = client.post(
        f"/w/{slug}/settings/destinations/{hook.id}/mappings/new/",
        {
            "name": "Orders",
            "enabled": "on",
            "types": ["track"],
            "events": "Order Completed, Checkout Started",
            "conditions": '[{"field": "properties.total", "op": "exists"}]',
            "fields_map": '{"id": "messageId", "total": "properties.total"}',
        },
    )
    assert response.status_code == 302
    mapping = Mapping.objects.get(destination=hook)
    assert mapping.trigger == {
        "type": ["track"],
        "event": ["Order Completed", "Checkout Started"],
        "conditions": [{"field": "properties.total", "op": "exists"}],
    }
    assert mapping.fields == {"id": "messageId", "total": "properties.total"}
    bad = client.post(
        f"/w/{slug}/settings/destinations/{hook.id}/mappings/{mapping.id}/",
        {"name": "Orders", "conditions": '[{"field": "type", "op": "like"}]'},
    )
    assert "unknown op 'like'; use one of eq, ne, exists, in, contains" in text(bad)
    page = text(client.get(f"/w/{slug}/settings/destinations/{hook.id}/"))
    assert "Orders" in page and "New mapping" in page


def test_viewers_read_and_outsiders_find_nothing(acme, client):
    source = make_source(acme["workspace"], "Web app")
    hook = make_destination(acme["workspace"], "http://127.0.0.1:9/hook", name="Warehouse", sources=[source])
    slug = acme["workspace"].slug
    urls = [
        f"/w/{slug}/settings/",
        f"/w/{slug}/settings/sources/{source.id}/",
        f"/w/{slug}/settings/destinations/{hook.id}/",
        f"/w/{slug}/destinations/{hook.id}/alerts/",
        f"/w/{slug}/sources/{source.id}/alerts/",
        f"/w/{slug}/alerts/",
    ]
    client.force_login(acme["viewer"])
    for url in urls:
        page = client.get(url)
        assert page.status_code == 200, url
    page = client.get(f"/w/{slug}/settings/sources/{source.id}/")
    assert "only the workspace's owners can change it" in text(page)
    assert 'name="name" value="Web app" maxlength="200" required disabled' in page.content.decode()
    assert client.post(f"/w/{slug}/settings/sources/{source.id}/", {"name": "Mine"}).status_code == 403
    assert client.post(f"/w/{slug}/settings/sources/{source.id}/delete/").status_code == 403
    assert client.get(f"/w/{slug}/settings/sources/new/").status_code == 403
    assert Source.objects.get(id=source.id).name == "Web app"

    client.force_login(acme["outsider"])
    for url in urls:
        assert client.get(url).status_code == 404, url


def test_the_api_token_page_shows_a_new_key_once(acme, client):
    client.force_login(acme["owner"])
    created = client.post("/account/api-token/", {"action": "create"})
    key = re.search(r'<code id="new-key">(\w+)</code>', created.content.decode())[1]
    assert ApiToken.objects.get(user=acme["owner"]).digest == tokens.digest(key)  # only its hash is kept
    later = client.get("/account/api-token/").content.decode()
    assert key not in later and f"<code>{key[:4]}…</code>" in later
    replaced = client.post("/account/api-token/", {"action": "create"})
    assert (
        ApiToken.objects.get(user=acme["owner"]).digest != tokens.digest(key) and replaced.status_code == 200
    )
    revoked = client.post("/account/api-token/", {"action": "revoke"})
    assert revoked.status_code == 302 and not ApiToken.objects.filter(user=acme["owner"]).exists()
