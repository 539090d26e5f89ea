"""Fixtures of the API tests."""

import pytest

from tests.overview.api.team import Team, make_team


@pytest.fixture
def team(db) -> Team:
    return make_team()
