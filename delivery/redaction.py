"""Secrets out of stored samples: what was sent to a destination and what it answered are kept for
operators to read, and a destination that echoes the request (an `Authorization` header, an API key in
a URL) must not show its credentials to every viewer. One function, applied to the text before storage."""

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
# Shorter credential values (a region, a site number) are too likely to match ordinary text.
MIN_SECRET_LENGTH = 6

# JSON members whose name says secret: "api_key": "…", "X-Api-Key": "…", "access_token": "…". Every
# member with a string value is matched once and its name checked (linear in the text: a pattern that
# looks for the word inside every quoted name backtracks, and cost 5 ms for 9 KB).
SECRET_NAME = re.compile(
    r"authorization|api[_-]?key|apikey|secret|password|passwd|token|cookie|signature", re.IGNORECASE
)
STRING_MEMBER = re.compile(r'("(?:[^"\\]|\\.)*"\s*:\s*)"(?:[^"\\]|\\.)*"')
PATTERNS = [
    # "Authorization: Bearer abc…", "Basic c2l0ZTox…", "Token 9944b0…": the scheme stays, the value goes.
    # "Bearer …" is never prose. "Basic", "Token", "Digest" (case-sensitive) only before 8 or more
    # characters with a digit, as keys and base64 have, so that "Token count" or "Basic plan" stay.
    (re.compile(r"\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1\2{REDACTED}"),
    (
        re.compile(r"\b(Basic|Token|Digest)(\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1\2{REDACTED}",
    ),
    # Query strings and form bodies: api_key=…&, token=…
    (
        re.compile(
            r"\b((?:api[_-]?key|apikey|access[_-]?token|token|secret|password)=)[^&\s\"']+", re.IGNORECASE
        ),
        rf"\1{REDACTED}",
    ),
]


def secret_values(credentials: Mapping[str, Any]) -> list[str]:
    """Every string in a destination's credentials (header values, keys) and each of its words, longest
    first."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            # The whole value, and its parts: "Bearer sk-…" is echoed as often without its scheme.
            found.extend(part for part in [value, *value.split()] if len(part) >= MIN_SECRET_LENGTH)

    walk(credentials)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """`text` (plain or JSON) with the known secret shapes and the given secret values replaced by
    [redacted]; JSON text stays valid JSON."""
    if not text:
        return text
    for secret in secrets:
        # As typed, and as it reads inside a JSON string (quotes and backslashes escaped).
        for form in {secret, json.dumps(secret)[1:-1]}:
            text = text.replace(form, REDACTED)
    text = STRING_MEMBER.sub(_member, text)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _member(match: re.Match) -> str:
    name = match.group(1)
    return f'{name}"{REDACTED}"' if SECRET_NAME.search(name) else match.group(0)
