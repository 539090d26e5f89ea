"""The generic JSON batch webhook: POST {"batch": [...], "idempotency_keys": [...]} to the destination's
URL, with the request's key in an Idempotency-Key header (see `delivery.idempotency`).

Any 2xx other than 207 means every event was delivered. 207 carries one entry per event it has
something to say about: {"results": [{"index": i, "status": s, "message": "..."}]}; an index it does
not list was delivered. The README documents the format for anyone building a compatible endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from delivery import retries
from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, check_headers, map_fields
from delivery.http import Answer, OutboundRequest
from delivery.idempotency import batch_key
from delivery.multistatus import (
    UNREADABLE,
    InvalidEvent,
    error_for_status,
    group_by_index,
    join_messages,
    per_item,
    read_json,
    shown_body,
    unreadable_error,
)
from delivery.results import Result, Success

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class WebhookSettings(KindSettings):
    url: str
    # Extra headers: settings["headers"] (shown) merged with credentials["headers"] (secret, e.g.
    # Authorization), the secret ones winning.
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        if not endpoint:
            raise InvalidSettings("the webhook needs a URL")
        headers = check_headers(settings.get("headers"), "settings.headers")
        headers |= check_headers(credentials.get("headers"), "credentials.headers")
        return cls(url=endpoint, headers=headers)


class WebhookAdapter(Adapter):
    kind = "webhook"
    label = "The webhook"
    credentials_example = '{"headers": {"Authorization": "Bearer …"}}'
    settings_class = WebhookSettings
    config: WebhookSettings

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> Any:
        if not fields:
            return message
        mapped = map_fields(message, fields)
        if not mapped:
            raise InvalidEvent(
                f"none of the mapping's fields ({', '.join(sorted(fields))}) is present in this event"
            )
        return mapped

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        body = {"batch": items, "idempotency_keys": keys}
        encoded = json.dumps(body, separators=(",", ":"), default=str).encode()
        # The configured headers may not replace the key: a destination must be able to rely on it.
        headers = {**self.config.headers, IDEMPOTENCY_HEADER: batch_key(keys)}
        return OutboundRequest(self.config.url, encoded, headers)

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        if answer.status != 207:
            return [
                Success(answer.status, response={"status": answer.status, "body": shown_body(answer)})
            ] * count
        body = read_json(answer)
        results = body.get("results") if isinstance(body, dict) else UNREADABLE
        if not isinstance(results, list):
            message = 'the webhook answered 207 without a readable {"results": [...]} body'
            response = {"status": 207, "body": shown_body(answer)}
            return [unreadable_error(207, message, response=response)] * count
        return per_item(
            group_by_index(results, "index", count),
            count,
            status=207,
            label="The webhook",
            field="results",
            describe=_entry_text,
            named=_event_result,
            others=Success(207, response={"status": 207, "results": []}),
        )


def _status_of(entry: dict[str, Any]) -> int | None:
    status = entry.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
        return status
    return None


def _entry_text(entry: Any) -> str:
    if isinstance(entry, dict) and entry.get("message"):
        return str(entry["message"])
    return json.dumps(entry, default=str)[:200]


def _event_result(entries: list[dict[str, Any]]) -> Result:
    """All entries the 207 gave for one event: delivered only if every one of them says 2xx."""
    response = {"status": 207, "results": entries}
    errors = [e for e in entries if not (_status_of(e) and 200 <= _status_of(e) < 300)]
    if not errors:
        return Success(_status_of(entries[0]) or 200, response=response)
    message = join_messages([_entry_text(e) for e in errors])
    statuses = [_status_of(e) for e in errors]
    if None in statuses:
        return unreadable_error(
            207, f"a result for this event has no valid status: {message}", response=response
        )
    # The final word decides: a non-retryable status anywhere means retrying cannot help.
    decisive = next((s for s in statuses if not retries.is_retryable_status(s)), statuses[0])
    return error_for_status(decisive, message, response=response)
