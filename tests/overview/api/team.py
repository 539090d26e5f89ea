"""The configuration API's cast: Acme (owner and viewer) and Globex, another company whose owner is an
outsider to Acme, each with a source and a destination; clients authenticated by token."""

from dataclasses import dataclass

from rest_framework.test import APIClient

from delivery.models import Destination, Mapping, Source, Workspace
from overview.api import tokens
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

PUBLIC_URL = "https://hooks.example.com/collect"  # does not resolve here: not refused as private


def client_for(user) -> APIClient:
    """A client with the user's token; the key is issued once per user object (only its hash is stored,
    so a second client of the same user reuses the key rather than replacing it)."""
    if not hasattr(user, "test_api_key"):
        user.test_api_key = tokens.issue(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user.test_api_key}")
    return client


@dataclass
class Team:
    """Acme (owner and viewer) and Globex (another company whose owner is an outsider to Acme)."""

    owner: object
    viewer: object
    outsider: object
    acme: Workspace
    globex: Workspace
    web: Source
    warehouse: Destination
    orders: Mapping
    globex_source: Source
    globex_destination: Destination

    def api(self, who: str) -> APIClient:
        return client_for(getattr(self, who))


def make_team() -> Team:
    owner, viewer, outsider = make_user("olivia"), make_user("victor"), make_user("oscar")
    acme = make_workspace("Acme", owner=owner, viewer=viewer)
    globex = make_workspace("Globex", owner=outsider)
    web = make_source(acme, "Web app")
    warehouse = make_destination(
        acme, PUBLIC_URL, name="Warehouse", sources=[web], credentials={"api_key": "sk-live-secret"}
    )
    orders = make_mapping(warehouse, "Orders", trigger={"type": ["track"], "event": ["Order Completed"]})
    globex_source = make_source(globex, "Globex app")
    globex_destination = make_destination(globex, PUBLIC_URL, name="Globex hook", sources=[globex_source])
    return Team(
        owner, viewer, outsider, acme, globex, web, warehouse, orders, globex_source, globex_destination
    )
