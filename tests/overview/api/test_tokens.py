"""API tokens are stored as hashes: the key is shown once (UI, POST /api/v1/token/, drf_create_token),
`Authorization: Token <key>` works as before, and tokens made before hashing keep working."""

import hashlib

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from overview.api import tokens
from overview.models import ApiToken
from tests.factories import make_user, make_workspace


def workspaces_seen_with(key: str) -> list[str]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/workspaces/")
    assert response.status_code == 200, response.content
    return [w["name"] for w in response.json()]


def test_a_token_is_stored_as_the_sha256_of_its_key_and_authenticates(db):
    owner = make_user("olivia")
    make_workspace("Acme", owner=owner)
    key = tokens.issue(owner)

    stored = ApiToken.objects.get(user=owner)
    assert len(key) == 40 and stored.digest == hashlib.sha256(key.encode()).hexdigest()
    assert stored.prefix == key[:4]
    assert key not in {stored.digest, stored.prefix}
    assert workspaces_seen_with(key) == ["Acme"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {stored.digest}")  # the hash itself is no key
    assert client.get("/api/v1/workspaces/").json() == {"detail": "Invalid token."}


def test_drf_create_token_prints_the_key_once_and_reset_replaces_it(db, capsys):
    owner = make_user("olivia")
    make_workspace("Acme", owner=owner)

    call_command("drf_create_token", "olivia")
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("Generated token ") and printed.endswith(" for user olivia")
    key = printed.split()[2]
    assert workspaces_seen_with(key) == ["Acme"]

    with pytest.raises(CommandError) as refused:
        call_command("drf_create_token", "olivia")
    assert str(refused.value) == (
        "User olivia already has a token, and only its hash is kept, so it cannot be shown again: "
        "run with --reset to replace it with a new one."
    )
    call_command("drf_create_token", "olivia", "--reset")
    new_key = capsys.readouterr().out.split()[2]
    assert new_key != key and workspaces_seen_with(new_key) == ["Acme"]
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/workspaces/").status_code == 401
    with pytest.raises(CommandError) as missing:
        call_command("drf_create_token", "nobody")
    assert str(missing.value) == "Cannot create the Token: user nobody does not exist"


def test_post_token_gives_a_new_key_and_the_old_one_stops_working(db):
    make_user("olivia")
    first = APIClient().post("/api/v1/token/", {"username": "olivia", "password": "a-long-test-password"})
    second = APIClient().post("/api/v1/token/", {"username": "olivia", "password": "a-long-test-password"})
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] != second.json()["token"]
    assert workspaces_seen_with(second.json()["token"]) == []
    old = APIClient(HTTP_AUTHORIZATION=f"Token {first.json()['token']}").get("/api/v1/workspaces/")
    assert old.status_code == 401 and old.json() == {"detail": "Invalid token."}


def test_tokens_made_before_hashing_are_migrated_and_keep_working(db):
    """The data migration reads DRF's authtoken_token table (keys in clear), stores the digests and
    drops the table."""
    owner = make_user("olivia")
    make_workspace("Acme", owner=owner)
    old_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL,"
            " user_id integer NOT NULL UNIQUE)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [old_key, owner.id])
    migration = __import__("overview.migrations.0002_api_tokens_hashed", fromlist=["hash_existing_tokens"])
    with connection.schema_editor() as editor:
        migration.hash_existing_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    assert ApiToken.objects.get(user=owner).digest == hashlib.sha256(old_key.encode()).hexdigest()
    assert workspaces_seen_with(old_key) == ["Acme"]
