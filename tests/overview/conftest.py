"""Fixtures of the overview's page tests."""

import pytest

from tests.factories import make_user, make_workspace
from tests.overview.shop import Shop, make_shop


@pytest.fixture
def acme(db, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    owner, viewer, outsider = make_user("olivia"), make_user("victor"), make_user("oscar")
    workspace = make_workspace("Acme", owner=owner, viewer=viewer)
    make_workspace("Globex", owner=outsider)
    return {"workspace": workspace, "owner": owner, "viewer": viewer, "outsider": outsider}


@pytest.fixture
def shop(db, settings) -> Shop:
    """The alert tests' shop; links in messages point at SITE_URL, Slack at a local server."""
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.SITE_URL = "https://overview.acme.test"
    return make_shop()
