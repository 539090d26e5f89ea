"""Brute force on the login page (django-axes, counted in the shared cache): after LOGIN_FAILURE_LIMIT
wrong passwords for one user name from one address, that pair is locked out with a clear page."""

from django.core.management import call_command
from django.test import Client

from tests.factories import make_user
from tests.overview.page_text import text

PASSWORD = "a-long-test-password"


def log_in(client: Client, password: str, username: str = "olivia"):
    return client.post("/login/", {"username": username, "password": password})


def guess_wrong(client: Client, times: int) -> list[int]:
    return [log_in(client, f"guess-{i}").status_code for i in range(times)]


def test_five_wrong_passwords_lock_the_user_name_out_with_a_page_that_says_so(db):
    make_user("olivia")
    client = Client()
    wrong = [log_in(client, f"guess-{i}") for i in range(4)]
    assert [r.status_code for r in wrong] == [200] * 4
    assert "That user name and password do not match." in text(wrong[0])

    fifth = log_in(client, "guess-5")
    assert fifth.status_code == 429
    assert "Delivery Overview Too many failed logins After 5 wrong passwords in a row, " in text(fifth)
    assert "logging in as olivia from this address is locked for 15 minutes." in text(fifth)
    # Locked out, the right password is refused too, without being checked.
    assert log_in(client, PASSWORD).status_code == 429
    # Another user name from the same address is not locked.
    make_user("victor")
    assert log_in(client, PASSWORD, username="victor").status_code == 302


def test_once_the_lockout_is_cleared_the_operator_logs_in(db):
    make_user("olivia")
    client = Client()
    assert guess_wrong(client, 5) == [200] * 4 + [429]
    assert log_in(client, PASSWORD).status_code == 429

    call_command("axes_reset_ip_username", "127.0.0.1", "olivia")  # as the lockout page says

    response = log_in(client, PASSWORD)
    assert response.status_code == 302 and response.url == "/"


def test_a_success_resets_the_count(db):
    make_user("olivia")
    client = Client()
    assert guess_wrong(client, 4) == [200] * 4
    assert log_in(client, PASSWORD).status_code == 302
    client.post("/logout/")
    assert guess_wrong(client, 4) == [200] * 4  # four more, not eight in a row: no lockout
    assert log_in(client, PASSWORD).status_code == 302
