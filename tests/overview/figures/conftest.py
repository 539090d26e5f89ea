"""The figure tests' story, recorded at the fixed NOW."""

import pytest

from tests.overview.story import Story, make_story, record


@pytest.fixture
def story(db) -> Story:
    story = make_story()
    record(story)
    return story
