"""Single sign-on with OpenID Connect, against a real provider process (oidc-provider-mock): an operator
signs in at the provider and lands on the dashboard with exactly the workspaces its groups claim gives;
the next sign-in follows the provider's changes; password login can be turned off; without a provider
nothing changes."""

import logging
from urllib.parse import parse_qs

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from delivery.models import Membership, Workspace
from devtools.management.commands.demo import web_command
from overview.models import SingleSignOnIdentity
from overview.sso import provider as sso_provider
from tests.conftest import RUN_ID, web_server
from tests.factories import make_user
from tests.overview.page_text import text
from tests.overview.sso_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    csrf_token,
    running_provider,
    sign_in,
    sso_settings,
)

PASSWORD = "a-long-test-password"


@pytest.fixture
def provider():
    with running_provider() as provider:
        yield provider
    sso_provider.discovery.cache_clear()


@pytest.fixture
def sso(settings, provider):
    for name, value in sso_settings(provider).items():
        setattr(settings, name, value)
    return provider


@pytest.fixture
def workspaces(transactional_db):
    # Committed: the live server's thread, and the server process, read them.
    slugs = ("acme", "globex", "initech")
    return {slug: Workspace.objects.create(name=slug.title(), slug=slug) for slug in slugs}


def memberships_of(user) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("workspace__slug", "role"))


def test_an_operator_signs_in_at_the_provider_and_gets_the_workspaces_its_groups_give(
    sso, live_server, workspaces, caplog
):
    caplog.set_level(logging.DEBUG)
    sso.set_user(
        "u-1001",
        email="olivia@acme.test",
        preferred_username="olivia",
        given_name="Olivia",
        groups=["delivery:acme:owner", "delivery:globex:viewer", "delivery:gone:owner", "wiki-editors"],
    )
    with httpx.Client() as browser:
        landed = sign_in(browser, live_server.url, sso, "u-1001")
        assert landed.status_code == 302 and landed.headers["location"] == "/"
        home = browser.get(f"{live_server.url}/", follow_redirects=True)

    assert home.status_code == 200 and str(home.url) == f"{live_server.url}/w/acme/"
    assert "olivia" in home.text and "Log out" in home.text
    identity = SingleSignOnIdentity.objects.select_related("user").get()
    assert (identity.issuer, identity.subject) == (sso.url, "u-1001")
    user = identity.user
    assert (user.username, user.email, user.first_name) == ("olivia", "olivia@acme.test", "Olivia")
    assert not user.has_usable_password() and not user.is_staff
    assert memberships_of(user) == {"acme": "owner", "globex": "viewer"}  # none in initech
    # The unknown workspace is logged by its slug only; nothing names who signed in, nor the secret.
    assert "Single sign-on: groups name no workspace here: gone" in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert "olivia@acme.test" not in caplog.text and "u-1001" not in caplog.text.replace("/users/u-1001", "")


def test_signing_in_again_after_the_groups_changed_changes_the_memberships(sso, live_server, workspaces):
    sso.set_user("u-1001", email="olivia@acme.test", groups=["delivery:acme:owner", "delivery:globex:viewer"])
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-1001").status_code == 302
    user = SingleSignOnIdentity.objects.get(subject="u-1001").user
    assert memberships_of(user) == {"acme": "owner", "globex": "viewer"}

    # At the provider: acme removed, globex made owner, initech added as viewer; the email changed.
    sso.set_user(
        "u-1001", email="o.smith@acme.test", groups=["delivery:globex:owner", "delivery:initech:viewer"]
    )
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-1001").status_code == 302
        assert browser.get(f"{live_server.url}/w/acme/").status_code == 404

    assert get_user_model().objects.count() == 1  # the same account: matched by sub, not email
    user.refresh_from_db()
    assert user.email == "o.smith@acme.test"
    assert memberships_of(user) == {"globex": "owner", "initech": "viewer"}

    sso.set_user("u-1001", email="o.smith@acme.test")  # no groups at all: no access
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-1001").status_code == 302
    assert memberships_of(user) == {}


def test_a_local_account_with_the_same_email_is_not_taken_over(sso, live_server, transactional_db):
    local = make_user("olivia")  # olivia@example.com, with a password
    sso.set_user("u-2002", email="olivia@example.com", preferred_username="olivia")
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-2002").status_code == 302

    signed_in = SingleSignOnIdentity.objects.get(subject="u-2002").user
    assert signed_in != local and signed_in.username == "olivia-2"
    assert not SingleSignOnIdentity.objects.filter(user=local).exists()


def test_the_staff_group_makes_staff_and_leaving_it_unmakes(sso, settings, live_server, transactional_db):
    settings.OIDC_STAFF_GROUP = "delivery-admins"
    sso.set_user("u-3003", email="ada@acme.test", groups=["delivery-admins"])
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-3003").status_code == 302
        assert browser.get(f"{live_server.url}/admin/").status_code == 200
    user = SingleSignOnIdentity.objects.get(subject="u-3003").user
    assert user.is_staff

    sso.set_user("u-3003", email="ada@acme.test", groups=[])
    with httpx.Client() as browser:
        assert sign_in(browser, live_server.url, sso, "u-3003").status_code == 302
    user.refresh_from_db()
    assert not user.is_staff


def test_logout_ends_the_session_here_and_at_the_provider(sso, live_server, workspaces):
    sso.set_user("u-1001", email="olivia@acme.test", groups=["delivery:acme:viewer"])
    with httpx.Client() as browser:
        sign_in(browser, live_server.url, sso, "u-1001")
        page = browser.get(f"{live_server.url}/w/acme/")
        out = browser.post(
            f"{live_server.url}/logout/",
            data={"csrfmiddlewaretoken": csrf_token(page.text)},
            headers={"Referer": f"{live_server.url}/w/acme/"},
        )
        assert out.status_code == 302
        end_session, _, end_query = out.headers["location"].partition("?")
        assert end_session == f"{sso.url}/oauth2/end_session"
        query = parse_qs(end_query)
        assert query["post_logout_redirect_uri"] == [f"{live_server.url}/login/"]
        assert query["client_id"] == [CLIENT_ID] and query["id_token_hint"][0].count(".") == 2
        assert browser.get(out.headers["location"]).status_code == 200  # the provider's confirmation
        after = browser.get(f"{live_server.url}/w/acme/")
        assert after.status_code == 302 and after.headers["location"].startswith("/login/")


def test_a_callback_with_a_state_this_session_never_sent_is_refused(sso, live_server, transactional_db):
    sso.set_user("u-1001", email="olivia@acme.test")
    with httpx.Client() as browser:
        start = browser.get(f"{live_server.url}/oidc/authenticate/")
        consented = browser.post(start.headers["location"], data={"sub": "u-1001"})
        callback = consented.headers["location"]
        forged = callback.split("&state=")[0] + "&state=not-the-one-we-sent"
        assert browser.get(forged).status_code == 400
        with httpx.Client() as other_browser:  # the right state, in another session
            assert other_browser.get(callback).status_code == 302
            assert other_browser.get(f"{live_server.url}/").headers["location"].startswith("/login/")
    assert not SingleSignOnIdentity.objects.exists()


def test_a_provider_that_cannot_be_reached_is_said_on_the_login_page(settings, db):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    client = Client()
    answer = client.get("/oidc/authenticate/", follow=True)
    assert answer.redirect_chain == [("/login/", 302)]
    assert "Acme ID cannot be reached just now. Please try again in a minute." in text(answer)


# ---------------------------------------------------------------------------------------------------
# The login page and password login


def test_with_single_sign_on_and_password_login_on_the_page_offers_both(sso, db):
    page = Client().get("/login/?next=/w/acme/")
    assert '<a class="button button--primary login__sso" href="/oidc/authenticate/?next=/w/acme/">' in (
        page.content.decode().replace("%2F", "/")
    )
    assert "Sign in with Acme ID or with your user name and password User name Password" in text(page)
    make_user("victor")
    assert Client().post("/login/", {"username": "victor", "password": PASSWORD}).status_code == 302


def test_password_login_off_shows_only_the_button_and_refuses_a_password(sso, settings, db):
    settings.PASSWORD_LOGIN = False
    make_user("victor")
    client = Client()
    page = client.get("/login/")
    assert "Sign in with Acme ID" in text(page)
    assert 'name="password"' not in page.content.decode()

    refused = client.post("/login/", {"username": "victor", "password": PASSWORD})
    assert refused.status_code == 403
    assert "Logging in with a password is turned off on this site: sign in with Acme ID." in text(refused)
    assert client.get("/").status_code == 302  # still not logged in

    # The admin's form neither: its login sends to ours, back to the admin afterwards.
    admin = client.post("/admin/login/?next=/admin/", {"username": "victor", "password": PASSWORD})
    assert admin.status_code == 302 and admin.url == "/login/?next=%2Fadmin%2F"
    # Nor a password exchanged for an API token; an existing token still works.
    token = client.post("/api/v1/token/", {"username": "victor", "password": PASSWORD})
    assert token.status_code == 403
    assert token.json() == {
        "detail": "Password login is turned off on this site: create a token on the API token page."
    }


def test_api_tokens_work_with_password_login_off(sso, settings, db):
    from overview.api import tokens

    settings.PASSWORD_LOGIN = False
    key = tokens.issue(make_user("victor"))
    answer = Client().get("/api/v1/workspaces/", HTTP_AUTHORIZATION=f"Token {key}")
    assert answer.status_code == 200


def test_without_a_provider_the_login_page_is_as_before(settings, db):
    settings.PASSWORD_LOGIN = False  # ignored without single sign-on: nobody is locked out
    page = Client().get("/login/")
    assert "Sign in with" not in text(page) and 'name="password"' in page.content.decode()
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404
    make_user("victor")
    assert Client().post("/login/", {"username": "victor", "password": PASSWORD}).status_code == 302


# ---------------------------------------------------------------------------------------------------
# The environment, as a real server process reads it


@pytest.mark.e2e
def test_a_server_configured_by_the_environment_signs_in_by_discovery_with_password_login_off(
    provider, workspaces
):
    env = {
        "OIDC_ISSUER": provider.url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_PROVIDER_NAME": "Acme ID",
        "OIDC_GROUP_PREFIX": "do/",
        "PASSWORD_LOGIN": "false",
    }
    provider.set_user("u-4004", email="max@acme.test", preferred_username="max", groups=["do/initech:owner"])
    with web_server(lambda port: web_command("127.0.0.1", port), "web-sso", env) as site:
        login = httpx.get(f"{site}/login/")
        assert "Sign in with Acme ID" in login.text and 'name="password"' not in login.text
        with httpx.Client() as browser:
            assert sign_in(browser, site, provider, "u-4004").headers["location"] == "/"
            assert str(browser.get(f"{site}/", follow_redirects=True).url) == f"{site}/w/initech/"
        log = (django_settings.DATA_DIR / f"test-web-sso-{RUN_ID}.log").read_text()
    assert memberships_of(SingleSignOnIdentity.objects.get(subject="u-4004").user) == {"initech": "owner"}
    assert CLIENT_SECRET not in log
