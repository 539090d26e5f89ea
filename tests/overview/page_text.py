"""What an operator reads on a page: its visible text, and one step card of an overview."""

import re
from html import unescape


def text(response) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def card(html: str, step: str) -> str:
    """The text of one step card (tags stripped, whitespace collapsed)."""
    match = re.search(rf'<a href="[^"]*" class="step[^"]*" data-step="{step}".*?</a>', html, re.S)
    assert match, f"no card for {step}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(0)).split())


def breakdown(html: str) -> str:
    """The text of the breakdown table's rows (its groups and their versions), without its head."""
    match = re.search(r'<table class="table table--breakdown">.*?</thead>(.*?)</table>', html, re.S)
    assert match, "no breakdown table"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())
