"""Helpers for the browser tests (the `chromium` fixture itself is in tests/conftest.py)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "a-long-test-password"  # what tests.factories.make_user sets


@contextmanager
def open_page(browser, **context_options) -> Iterator:
    """A page in a fresh browser context; any JavaScript error on it fails the test."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under artifacts/screenshots/ (kept by CI) and return its path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
