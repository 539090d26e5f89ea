"""Helpers for the browser tests (the `chromium` fixture itself is in tests/conftest.py)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "a-long-test-password"  # what tests.factories.make_user sets


LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@contextmanager
def open_page(browser, **context_options) -> Iterator:
    """A page in a fresh browser context. Any JavaScript error on it fails the test, and so does any
    request to another host than this machine's (a page must load everything from our own server):
    such a request is refused and named in the failure."""
    context = browser.new_context(**context_options)
    outside: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not outside, f"The page asked another host for: {outside}"


def shot(page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under artifacts/screenshots/ (kept by CI) and return its path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
