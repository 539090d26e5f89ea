"""Requests refused before any event is read are counted as refused requests — under their source, or
under an unknown key's first characters — not as events, and an operator sees them: on the source's
overview and on the workspace's refused-requests page, never another workspace's."""

import datetime as dt
import gzip
import json

import pytest
from django.utils import timezone

from delivery import refused
from delivery.models import RefusedRequest, Source
from tests.delivery.test_ingest import auth, post, step_counts, track
from tests.factories import make_source, make_user, make_workspace
from tests.overview.page_text import text


@pytest.fixture
def source(db):
    return make_source(make_workspace("Acme", owner=make_user("olivia")), "Web shop")


def groups() -> set[tuple]:
    return set(RefusedRequest.objects.values_list("source_id", "key_prefix", "code", "status", "count"))


def test_each_refusal_is_one_refused_request_and_no_event(client, source):
    typo = source.write_key[:10] + "x" * 22
    post(client, "/v1/batch", {"batch": [track(1)]}, key=typo)
    post(client, "/v1/batch", {"batch": [track(1)]}, key=typo)
    post(client, "/v1/track", track(1))  # no write key anywhere
    post(client, "/v1/batch", None, key=source.write_key, raw=b"{not json")
    big = json.dumps({"batch": [track(i, properties={"pad": "x" * 20_000}) for i in range(30)]}).encode()
    too_large = post(client, "/v1/batch", None, key=source.write_key, raw=big)

    assert too_large.status_code == 413
    assert groups() == {
        (None, source.write_key[:6], "unknown_source", 401, 2),
        (None, "", "unknown_source", 401, 1),
        (source.id, "", "bad_request", 400, 1),
        (source.id, "", "request_too_large", 413, 1),  # 30 events in it, one refused request
    }
    assert step_counts(source.id) == {}  # no step counts what could not be read


def test_a_gzipped_body_that_is_not_gzip_and_a_page_from_a_refused_origin_are_counted_too(client, source):
    Source.objects.filter(id=source.id).update(allowed_origins=["https://shop.example"])
    client.post(
        "/v1/batch",
        data=b"plain",
        content_type="application/json",
        headers={**auth(source.write_key), "Content-Encoding": "gzip"},
    )
    client.post(
        "/v1/t",
        data=json.dumps({**track(1), "writeKey": source.write_key}),
        content_type="text/plain",
        headers={"Origin": "https://copycat.example", "User-Agent": "Mozilla/5.0 (copycat)"},
    )
    client.post(
        "/v1/batch",
        data=gzip.compress(json.dumps({"batch": [track(2)]}).encode()),
        content_type="application/json",
        headers={**auth(source.write_key), "Content-Encoding": "gzip"},
    )

    assert groups() == {(source.id, "", "bad_request", 400, 1), (source.id, "", "origin_not_allowed", 403, 1)}
    origin = RefusedRequest.objects.get(code="origin_not_allowed")
    assert (origin.last_origin, origin.last_user_agent) == (
        "https://copycat.example",
        "Mozilla/5.0 (copycat)",
    )
    assert step_counts(source.id) == {("received", ""): 1}


def test_operators_see_their_sources_refusals_and_unknown_keys_like_theirs_only(client, source):
    other = make_source(make_workspace("Globex"), "Globex app")
    post(client, "/v1/batch", None, key=source.write_key, raw=b"{not json")
    post(client, "/v1/batch", {"batch": [track(1)]}, key=source.write_key[:6] + "typo-further-on")
    post(client, "/v1/batch", {"batch": [track(1)]}, key="zzzzzz-nobody")
    post(client, "/v1/batch", None, key=other.write_key, raw=b"{not json")
    client.force_login(source.workspace.memberships.get().user)
    slug = source.workspace.slug

    page = text(client.get(f"/w/{slug}/refused/"))

    assert "Web shop 400 bad_request The request body is not valid JSON" in page
    assert f"unknown key {source.write_key[:6]}… 401 unknown_source Unknown write key" in page
    assert "zzzzzz" not in page and "Globex" not in page  # nobody's key, and another workspace's source
    overview = text(client.get(f"/w/{slug}/sources/{source.id}/"))
    assert "Refused requests, last 24 hours" in overview and "400 bad_request" in overview
    # Deployment staff also see the keys that look like nobody's.
    staff = make_user("staff")
    staff.is_staff = True
    staff.save()
    source.workspace.memberships.create(user=staff, role="viewer")
    client.force_login(staff)
    assert "unknown key zzzzzz…" in text(client.get(f"/w/{slug}/refused/"))


def test_old_hours_are_pruned(db, source):
    now = timezone.now()
    for hours_ago in (1, 24 * 15):
        refused.record(
            source_id=source.id,
            write_key="",
            code="bad_request",
            status=400,
            message="not JSON",
            at=now - dt.timedelta(hours=hours_ago),
        )

    assert refused.prune(now) == 1
    assert RefusedRequest.objects.count() == 1
