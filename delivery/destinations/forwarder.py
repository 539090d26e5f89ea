"""Forwarding to another Segment-compatible collector — this product's own tracking API included —
with `POST {endpoint}/v1/batch`, the collector's write key as the basic-auth user.

Each event goes on as it was received, with its messageId (the receiving collector deduplicates on it),
or as the mapping's fields when the mapping has some. The times our collector stamped are not passed
on: receivedAt is the receiving collector's to set, and sentAt/originalTimestamp would make it correct
the already corrected `timestamp` for clock skew a second time; the batch's `sentAt` is the time of
this request, so a receiver corrects only for our own clock.

A collector answers for the request as a whole: 2xx means every event was taken, any other status is
the same error for every event (`Adapter.whole_request_error`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any

from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, map_fields
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import InvalidEvent, shown_body
from delivery.results import Result, Success
from delivery.validation import MAX_MESSAGE_BYTES

BATCH_PATH = "/v1/batch"
# Stamped by our own collector on the way in; the receiving collector stamps its own.
NOT_FORWARDED = ("receivedAt", "sentAt", "originalTimestamp")


@dataclass(frozen=True)
class ForwarderSettings(KindSettings):
    base_url: str
    write_key: str

    @property
    def batch_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith(BATCH_PATH) else base + BATCH_PATH

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        if not endpoint:
            raise InvalidSettings("the collector needs its base URL, e.g. https://events.example.com")
        write_key = credentials.get("write_key")
        if not (isinstance(write_key, str) and write_key):
            raise InvalidSettings("the collector needs the credential write_key")
        return cls(base_url=endpoint, write_key=write_key)


class ForwarderAdapter(Adapter):
    kind = "tracking_api"
    label = "The collector"
    message_keys = ("message", "error", "code")  # as this product and Segment word their errors
    credentials_example = '{"write_key": "…"}'
    settings_class = ForwarderSettings
    config: ForwarderSettings

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> dict[str, Any]:
        item = _mapped(message, fields) if fields else message
        item = {k: v for k, v in item.items() if k not in NOT_FORWARDED}
        size = len(json.dumps(item, separators=(",", ":"), default=str).encode())
        if size > MAX_MESSAGE_BYTES:
            raise InvalidEvent(
                f"the event is {size:,} bytes, over the collector's 32 KB ({MAX_MESSAGE_BYTES:,} bytes) limit"
                " for one message"
            )
        return item

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        sent_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = json.dumps({"batch": items, "sentAt": sent_at}, separators=(",", ":"), default=str).encode()
        return OutboundRequest(self.config.batch_url, body, auth=(self.config.write_key, ""))

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        delivered = Success(answer.status, response={"status": answer.status, "body": shown_body(answer)})
        return [delivered] * count


def _mapped(message: dict[str, Any], fields: MappingType[str, str]) -> dict[str, Any]:
    """The mapping's fields, with the type and messageId a collector needs unless the mapping sets them."""
    mapped = map_fields(message, fields)
    if not mapped:
        raise InvalidEvent(
            f"none of the mapping's fields ({', '.join(sorted(fields))}) is present in this event"
        )
    for needed in ("type", "messageId"):
        if needed not in mapped and needed in message:
            mapped[needed] = message[needed]
    return mapped
