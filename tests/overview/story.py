"""A known mix of recorded rollups and samples around one workspace (two connected sources, one
destination with two mappings, noise around them), whose figures the tests know exactly."""

import datetime as dt
from dataclasses import dataclass

from delivery.models import Destination, Mapping, Source, Workspace
from delivery.recording import SampleBatch, Tally, Where
from delivery.steps import Step
from overview import windows
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

NOW = dt.datetime(2025, 3, 10, 12, 0, 30, tzinfo=dt.UTC)
CURRENT = NOW - dt.timedelta(hours=2)  # inside the last 24 hours
PREVIOUS = NOW - dt.timedelta(hours=26)  # inside the 24 hours before those


@dataclass
class Story:
    """A workspace with two connected sources, one destination with two mappings, and noise around it."""

    workspace: Workspace
    web: Source
    ios: Source
    unconnected: Source
    destination: Destination
    other: Destination
    tracks: Mapping
    identifies: Mapping
    user: object


def make_story(owner=None) -> Story:
    user = owner or make_user()
    workspace = make_workspace("Acme", owner=user)
    web, ios = make_source(workspace, "Web app"), make_source(workspace, "iOS app")
    unconnected = make_source(workspace, "Backend")
    destination = make_destination(workspace, "http://127.0.0.1:9/hook", name="Webhook", sources=[web, ios])
    other = make_destination(workspace, "http://127.0.0.1:9/other", name="Other", sources=[web])
    tracks = make_mapping(destination, "Track calls", trigger={"type": ["track"]})
    identifies = make_mapping(destination, "Identify calls", trigger={"type": ["identify"]})
    return Story(workspace, web, ios, unconnected, destination, other, tracks, identifies, user)


def record(story: Story, now: dt.datetime = NOW) -> None:
    """The known mix (see the module's tests for the figures it makes), relative to `now`."""
    current, previous = now - dt.timedelta(hours=2), now - dt.timedelta(hours=26)
    ws, d = story.workspace.id, story.destination.id
    m1, m2 = story.tracks.id, story.identifies.id
    web = Where(ws, story.web.id, event_type="track", event_name="Order Completed", app_version="1.0")
    web_identify = Where(ws, story.web.id, event_type="identify", app_version="1.0")
    ios = Where(ws, story.ios.id, event_type="track", event_name="Signed Up", app_version="2.0")
    tally = Tally()
    # The current window: 150 received, 4 failed on ingest, 6 filtered at source, 140 routed.
    tally.add(current, web, Step.RECEIVED, n=60)
    tally.add(current, web_identify, Step.RECEIVED, n=40)
    tally.add(current, ios, Step.RECEIVED, n=50)
    tally.add(current, web, Step.FAILED_ON_INGEST, "no_user_anon_id", n=4)
    tally.add(current, web_identify, Step.FILTERED_AT_SOURCE, "event_setting", n=6)
    tally.add(
        current,
        Where(ws, story.web.id, d, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        10,
    )
    tally.add(
        current,
        Where(ws, story.web.id, d, None, "page"),
        Step.FILTERED_AT_DESTINATION,
        "NO_MATCHING_MAPPING",
        5,
    )
    for mapping, counts in (
        (m1, {Step.DELIVERED: ("", 88), Step.FAILED_DELIVERY: ("400", 3), Step.PENDING_RETRY: ("503", 2),
              Step.QUEUED: ("", 2), Step.FILTERED_AT_DESTINATION: ("FILTERED_AT_MAPPING", 35)}),
        (m2, {Step.DELIVERED: ("", 37), Step.FAILED_DELIVERY: ("401", 1), Step.QUEUED: ("", 2),
              Step.FILTERED_AT_DESTINATION: ("FILTERED_AT_MAPPING", 90)}),
    ):  # fmt: skip
        at = Where(ws, story.web.id, d, mapping, "track", "Order Completed", "1.0")
        tally.add(current, at, Step.FILTERED_AT_DESTINATION, "FILTERED_BY_RULES", 10)
        for step, (reason, n) in counts.items():
            tally.add(current, at, step, reason, n)
    # The same events as a whole (mapping NULL, delivery.fanout): 125 reached a mapping, 10 of them both
    # (delivered by both), so 135 pairs are 115 + 4 + 2 + 4 events.
    whole = Where(ws, story.web.id, d, None, "track", "Order Completed", "1.0")
    tally.add(current, whole, Step.DELIVERED, n=88 + 37 - 10)
    tally.add(current, whole, Step.FAILED_DELIVERY, "400", 3)
    tally.add(current, whole, Step.FAILED_DELIVERY, "401", 1)
    tally.add(current, whole, Step.PENDING_RETRY, "503", 2)
    tally.add(current, whole, Step.QUEUED, n=4)
    # The previous window: 100 received, 2 failed on ingest, 12 filtered at source, 80 delivered.
    tally.add(previous, web, Step.RECEIVED, n=80)
    tally.add(previous, ios, Step.RECEIVED, n=20)
    tally.add(previous, web, Step.FAILED_ON_INGEST, "no_user_anon_id", n=2)
    tally.add(previous, web_identify, Step.FILTERED_AT_SOURCE, "event_setting", n=12)
    tally.add(
        previous,
        Where(ws, story.web.id, d, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        5,
    )
    tally.add(
        previous, Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0"), Step.DELIVERED, n=60
    )
    tally.add(
        previous,
        Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0"),
        Step.FAILED_DELIVERY,
        "400",
        1,
    )
    tally.add(previous, Where(ws, story.web.id, d, m2, "identify", "", "1.0"), Step.DELIVERED, n=20)
    tally.add(
        previous, Where(ws, story.web.id, d, None, "track", "Order Completed", "1.0"), Step.DELIVERED, n=60
    )
    tally.add(
        previous,
        Where(ws, story.web.id, d, None, "track", "Order Completed", "1.0"),
        Step.FAILED_DELIVERY,
        "400",
        1,
    )
    tally.add(previous, Where(ws, story.web.id, d, None, "identify", "", "1.0"), Step.DELIVERED, n=20)
    # Noise that belongs to nobody's figures: an unconnected source, another destination, older events.
    tally.add(current, Where(ws, story.unconnected.id, event_type="track"), Step.RECEIVED, n=1000)
    tally.add(
        current,
        Where(ws, story.web.id, story.other.id, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        7,
    )
    tally.add(current, Where(ws, story.web.id, story.other.id, 999, "track"), Step.DELIVERED, n=500)
    tally.add(current, Where(ws, story.web.id, story.other.id, None, "track"), Step.DELIVERED, n=500)
    tally.add(now - dt.timedelta(hours=50), web, Step.RECEIVED, n=7)
    tally.write()
    samples = SampleBatch()
    sent_at = Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0")
    for i in range(12):
        samples.add(
            current - dt.timedelta(minutes=i),
            sent_at,
            Step.FAILED_DELIVERY,
            "400",
            message_id=f"msg-{i}",
            status=400,
            error_type="BAD_REQUEST",
            error_message="email is not a valid address",
            sent={"email": "<b>x</b>"},
            body={"event": "Order Completed"},
            response={"error": "email is not a valid address"},
        )
    samples.add(
        current,
        web,
        Step.FAILED_ON_INGEST,
        "no_user_anon_id",
        message_id="bad-1",
        error_message="The message carried neither a userId nor an anonymousId.",
        body={"type": "track"},
    )
    samples.write()


def day_window() -> windows.Window:
    return windows.preset("24h", NOW)
