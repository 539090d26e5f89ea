"""The workspace home's figures from the story's known mix."""

import pytest

from overview.figures.home import workspace_summary
from tests.overview.story import day_window


def test_workspace_summary_has_last_day_figures_and_trends(story):
    summary = workspace_summary(
        [story.web, story.ios, story.unconnected], [story.destination, story.other], day_window()
    )

    figures = [(s.source.name, s.received, s.failed_on_ingest, s.filtered_at_source) for s in summary.sources]
    assert figures == [("Web app", 100, 4, 6), ("iOS app", 50, 0, 0), ("Backend", 1000, 0, 0)]
    webhook, other = summary.destinations
    assert (webhook.received, webhook.delivered, webhook.failed, webhook.pending_retry) == (150, 115, 4, 2)
    assert webhook.rate == pytest.approx(115 / 119 * 100)
    assert (other.received, other.delivered, other.rate) == (100, 500, 100.0)
    assert len(webhook.trend) == 25 and sum(webhook.trend) == 115 and webhook.trend[22] == 115
