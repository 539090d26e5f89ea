"""The change log: changes made through the API (with a token) and through the pages are recorded with
who made them and each field before and after, secrets masked; a destination's Changes tab and API list
its own, its mappings' (deleted ones too) and its alert rules'; the overview's chart marks each change
and each retry at its minute; another workspace sees none of it."""

from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from delivery.models import Membership
from overview import changes, retries
from overview.api import tokens
from overview.figures.events import UndeliveredFilter
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace


def owner_in(workspace):
    user = make_user()
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    return user


def test_an_api_change_is_recorded_with_its_token_user_and_secrets_masked(db):
    workspace = make_workspace()
    source = make_source(workspace)
    destination = make_destination(workspace, "https://example.com/hook", sources=[source], name="Hook")
    user = owner_in(workspace)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")

    answer = api.patch(
        f"/api/v1/destinations/{destination.id}/",
        {"name": "Hook v2", "credentials": {"api_key": "sk-very-secret"}, "filters": [
            {"action": "drop", "conditions": [{"field": "event", "op": "eq", "value": "Ping"}]}
        ]},
        format="json",
    )  # fmt: skip

    assert answer.status_code == 200, answer.content
    change = changes.for_destination(destination)[0]  # the newest: its creation came before
    assert (change.actor, change.action, change.object_type) == (user.username, "changed", "destination")
    assert change.fields["name"] == ("Hook", "Hook v2")
    assert change.fields["credentials"] == (changes.SECRET, changes.SECRET)
    assert "Ping" in change.fields["filters"][1]
    listed = api.get(f"/api/v1/destinations/{destination.id}/changes/").json()
    assert listed[0]["fields"]["name"] == ["Hook", "Hook v2"] and listed[0]["actor"] == user.username
    assert "sk-very-secret" not in str(listed)
    stranger = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(make_user())}")
    assert stranger.get(f"/api/v1/destinations/{destination.id}/changes/").status_code == 404


def test_a_mapping_deleted_on_a_page_shows_on_its_destinations_changes_tab(db):
    workspace = make_workspace()
    destination = make_destination(workspace, "https://example.com/hook", sources=[make_source(workspace)])
    mapping = make_mapping(destination, name="Orders <b>")
    user = owner_in(workspace)
    page = Client()
    page.force_login(user)

    page.post(reverse("configure:mapping_delete", args=[workspace.slug, destination.id, mapping.id]))
    tab = page.get(f"/w/{workspace.slug}/destinations/{destination.id}/changes/").content.decode()

    kinds = [(c.action, c.object_type, c.actor) for c in changes.for_destination(destination)]
    assert kinds[:2] == [("deleted", "mapping", user.username), ("created", "mapping", "")]
    assert f"<strong>{user.username}</strong> deleted the mapping <em>" in tab
    assert "Orders &lt;b&gt;" in tab and "Orders <b>" not in tab  # escaped


def test_the_chart_marks_each_change_and_each_retry(db, settings):
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    workspace = make_workspace()
    source = make_source(workspace)
    destination = make_destination(workspace, "https://example.com/hook", sources=[source])
    user = owner_in(workspace)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")
    api.patch(f"/api/v1/destinations/{destination.id}/", {"name": "<b>Hook</b>"}, format="json")
    retries.start(destination, retries.failed_only(UndeliveredFilter()), user)
    page = Client()
    page.force_login(user)

    chart = page.get(f"/w/{workspace.slug}/destinations/{destination.id}/", {"range": "1h"}).context["chart"]
    labels = [m["label"] for m in chart["markers"]]

    assert any(f"{user.username} changed the destination ‹b›Hook‹/b›" in label for label in labels)
    assert not any("<" in label for label in labels)  # Plotly would read a tag in a name as markup
    assert any(f"{user.username} retried 0 failed events" in label for label in labels)
    source_chart = page.get(f"/w/{workspace.slug}/sources/{source.id}/", {"range": "1h"}).context["chart"]
    [created] = [m["label"] for m in source_chart["markers"]]  # the source's own: its creation
    assert "created the source" in created
