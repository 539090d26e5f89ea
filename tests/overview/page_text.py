"""What an operator reads on a page: its visible text."""

import re
from html import unescape


def text(response) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
