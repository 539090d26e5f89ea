"""Fixtures of the overview's page tests."""

import pytest

from tests.factories import make_user, make_workspace


@pytest.fixture
def acme(db, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    owner, viewer, outsider = make_user("olivia"), make_user("victor"), make_user("oscar")
    workspace = make_workspace("Acme", owner=owner, viewer=viewer)
    make_workspace("Globex", owner=outsider)
    return {"workspace": workspace, "owner": owner, "viewer": viewer, "outsider": outsider}
