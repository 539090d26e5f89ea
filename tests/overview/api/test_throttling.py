"""Rate limits of the REST API, counted in the shared cache (Redis), so every process and host sees
the same count: per caller for the API, per client IP for the token endpoint."""

import redis
from django.conf import settings
from rest_framework.test import APIClient

from overview.api import tokens
from tests.factories import make_user, make_workspace


def test_the_token_endpoint_answers_429_after_30_guesses_a_minute(db):
    make_user("olivia")
    guesses = [
        APIClient().post("/api/v1/token/", {"username": "olivia", "password": f"guess-{i}"}).status_code
        for i in range(31)
    ]
    assert guesses == [400] * 30 + [429]
    # Even the right password waits: the limit is on the address, not on the password.
    right = APIClient().post("/api/v1/token/", {"username": "olivia", "password": "a-long-test-password"})
    assert right.status_code == 429
    assert right.json()["detail"].startswith("Request was throttled. Expected available in ")
    assert 1 <= int(right["Retry-After"]) <= 60


def test_the_count_lives_in_redis_where_every_process_reads_it(db):
    make_user("olivia")
    APIClient().post("/api/v1/token/", {"username": "olivia", "password": "guess"})
    # A separate connection to the cache's Redis (another process would open its own): the count is there.
    location = settings.CACHES["default"]["LOCATION"]
    keys = redis.Redis.from_url(location).keys(
        f"{settings.CACHES['default']['KEY_PREFIX']}:*throttle_token_*"
    )
    assert len(keys) == 1


def test_the_api_limits_each_token(db, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["user"] == "600/minute"  # the default (API_RATE_LIMIT)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "user": "5/minute"},
    }
    owner, other = make_user("olivia"), make_user("oscar")
    make_workspace("Acme", owner=owner)

    mine = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(owner)}")
    answers = [mine.get("/api/v1/workspaces/") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["detail"].startswith("Request was throttled. Expected available in ")
    theirs = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(other)}")
    assert theirs.get("/api/v1/workspaces/").status_code == 200  # another caller has its own count
