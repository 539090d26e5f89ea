"""A destination form shown again after an error never shows credentials back, neither the typed ones
nor the stored ones, and says they must be entered again."""

from tests.factories import make_destination
from tests.overview.page_text import text

TYPED = '{"headers": {"Authorization": "Bearer sk-live-typed-123456"}}'
RETYPE = "Credentials are never shown back: enter them again before you save."


def form(**overrides) -> dict:
    return {
        "name": "Warehouse", "kind": "webhook", "endpoint": "not a url", "batch_size": "100",
        "max_retries": "6", "enabled": "on", "credentials": TYPED, **overrides,
    }  # fmt: skip


def test_a_new_destination_with_an_error_comes_back_without_the_typed_credentials(acme, client):
    client.force_login(acme["owner"])
    response = client.post(f"/w/{acme['workspace'].slug}/settings/destinations/new/", form())
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid URL." in text(response)
    assert "sk-live-typed-123456" not in html and "Bearer" not in html.replace("Bearer …", "")
    assert RETYPE in text(response)


def test_editing_a_destination_with_an_error_shows_neither_typed_nor_stored_credentials(acme, client):
    destination = make_destination(
        acme["workspace"], "https://hooks.example.com/in", name="Hook",
        credentials={"headers": {"Authorization": "Bearer sk-live-stored-999999"}},
    )  # fmt: skip
    client.force_login(acme["owner"])
    url = f"/w/{acme['workspace'].slug}/settings/destinations/{destination.id}/"
    shown = client.get(url).content.decode()
    assert "sk-live-stored-999999" not in shown and RETYPE not in shown

    response = client.post(url, form(endpoint="https://hooks.example.com/in", batch_size="0"))
    html = response.content.decode()
    assert response.status_code == 200 and "has-error" in html
    assert "sk-live-typed-123456" not in html and "sk-live-stored-999999" not in html
    assert RETYPE in text(response)
    assert "Credentials are set: headers" in text(response)  # names only, never values
    destination.refresh_from_db()
    assert destination.credentials == {"headers": {"Authorization": "Bearer sk-live-stored-999999"}}
