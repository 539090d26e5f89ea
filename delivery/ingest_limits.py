"""Requests a second per write key at the tracking API, counted in the shared cache (Redis) so the limit
holds across every web process and host. One cache round trip a request; nothing when no limit is set."""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

WINDOW_SECONDS = 1
TOO_MANY = "Too many requests for this write key: at most {limit} a second. Send again after Retry-After."


@dataclass(frozen=True)
class Refusal:
    limit: int
    retry_after: int  # whole seconds, as the Retry-After header wants

    @property
    def message(self) -> str:
        return TOO_MANY.format(limit=self.limit)


def check(write_key: str) -> Refusal | None:
    """Count one request for `write_key` in this second's window; a Refusal once it is over the limit."""
    limit = settings.INGEST_RATE_LIMIT
    if limit <= 0 or not write_key:
        return None
    window = int(time.time()) // WINDOW_SECONDS
    key = cache.make_and_validate_key(f"ingest-rate:{write_key}:{window}")
    # SET NX (with expiry) then INCR, pipelined: one round trip, and the window's key expires by itself.
    pipe = cache._cache.get_client(key, write=True).pipeline(transaction=False)
    pipe.set(key, 0, ex=WINDOW_SECONDS + 1, nx=True)
    pipe.incr(key)
    count = pipe.execute()[1]
    if count <= limit:
        return None
    if count == limit + 1:  # once a window: the refusals are in the log, the events come again
        log.warning(
            "write key %s… over %d requests/s: refusing with 429 until the next second", write_key[:6], limit
        )
    return Refusal(limit, WINDOW_SECONDS)
