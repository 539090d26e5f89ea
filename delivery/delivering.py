"""Delivering one batch: claim due outcomes from the outbox, send their events through the destination's
adapter, and record one result per event — outcome rows, rollup moves, samples — in one transaction.
What each result means for its outcome (delivered, retried later, failed) is `retries.dispose`."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping as MappingType
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
from django.db import transaction

from delivery import fanout, history, http, idempotency, metrics, outbox, redaction, retries, throttle
from delivery.destinations import Adapter, InvalidSettings, adapter_for
from delivery.multistatus import PreparedBatch, transport_error
from delivery.outbox import Claim, Claimed
from delivery.reasons import Reason
from delivery.recording import SampleBatch, Tally, Where
from delivery.results import Error, ErrorType, Result
from delivery.steps import Step

log = logging.getLogger(__name__)

# Attempts beyond the retry budget that may end without a recorded answer (a worker killed mid-batch)
# before the outcome is given up on.
INTERRUPTED_ALLOWANCE = 3


@dataclass(frozen=True)
class Target:
    """What delivering to one destination and mapping needs, loaded once per task."""

    destination_id: int
    mapping_id: int
    batch_size: int
    max_retries: int
    fields: MappingType[str, str]
    adapter: Adapter | None  # None when the settings are unusable (see settings_error)
    settings_error: str = ""
    secrets: tuple[str, ...] = ()  # the destination's credentials, redacted from what is kept
    rate_limit: int | None = None  # events a second over the whole destination (delivery.throttle)

    @property
    def claim_size(self) -> int:
        return throttle.claim_size(self.batch_size, self.rate_limit)


@dataclass(frozen=True)
class BatchReport:
    claimed: int = 0
    recorded: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    # The destination gave no per-event answer and asked to be retried (timeout, 429, 5xx, ...).
    whole_batch_retry: bool = False
    # When the first of the batch's events waiting for a retry is due again, if any waits.
    retry_at: dt.datetime | None = None
    requested: bool = False  # a request went out (else every event was refused before sending)
    failure: throttle.Failure | None = None  # how the request failed as a whole, if it did


def target_for(destination, mapping) -> Target:
    try:
        adapter = _adapter(destination, mapping)
        error = ""
    except InvalidSettings as exc:
        adapter, error = None, str(exc)
    # A batch size above what the API takes (stored before the configuration refused it) is capped.
    most = adapter.max_batch_size if adapter is not None else None
    return Target(
        destination_id=destination.id,
        mapping_id=mapping.id,
        batch_size=max(1, min(destination.batch_size, most or destination.batch_size)),
        max_retries=destination.max_retries,
        fields=mapping.fields if isinstance(mapping.fields, dict) else {},
        adapter=adapter,
        settings_error=error,
        secrets=tuple(redaction.secret_values(destination.credentials)),
        rate_limit=destination.rate_limit,
    )


def _adapter(destination, mapping) -> Adapter:
    fields = mapping.fields
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise InvalidSettings(
            "the mapping's fields must map each target field to a path such as traits.email"
        )
    return adapter_for(destination)


# --- attempting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    results: list[Result]  # one per message, in order, each with `sent` and `body`
    # The request as a whole failed in a way worth retrying (no answer, 408, 429, 5xx).
    whole_batch_retry: bool = False
    exchanges: tuple[history.Exchange, ...] = ()  # the requests made: none, one, or a split batch's
    failure: throttle.Failure | None = None  # how a request failed as a whole, holding the destination


def attempt(
    adapter: Adapter, fields: MappingType[str, str], messages: Sequence[Any], keys: Sequence[str]
) -> Attempt:
    """Pre-validate, send one batch, and read the answer into one result per message; `keys` are the
    messages' idempotency keys."""
    prepared = PreparedBatch.build(messages, keys, lambda message, key: adapter.prepare(message, fields, key))
    if not prepared.items:
        return Attempt(prepared.place([]))
    sent = _send(adapter, prepared.items, prepared.keys, prepared.positions)
    return replace(sent, results=prepared.place(sent.results))


def _send(adapter: Adapter, items: list[Any], keys: list[str], positions: Sequence[int]) -> Attempt:
    """One request for these items (`positions`: their messages' places in the attempt), read into one
    result per item. A 413 splits them in two halves sent one after the other, down to a single item,
    which then fails as too large."""
    request = adapter.build_request(items, keys)
    started_at, start = dt.datetime.now(dt.UTC), time.perf_counter()
    try:
        answer = http.post(request)
    except (httpx.TransportError, http.DestinationAddressError) as exc:
        failure = retries.classify_transport(exc)
        log.info("batch of %d to %s failed: %s %s", len(items), adapter.kind, failure.code, exc)
        exchange = history.Exchange(request, positions, started_at, _ms_since(start), error=failure.message)
        held = throttle.Failure(None, failure.message) if failure.retryable else None
        return Attempt([transport_error(failure)] * len(items), failure.retryable, (exchange,), held)
    exchange = history.Exchange(request, positions, started_at, _ms_since(start), answer)
    if answer.status == 413 and len(items) > 1:
        half = len(items) // 2
        first = _send(adapter, items[:half], keys[:half], positions[:half])
        second = _send(adapter, items[half:], keys[half:], positions[half:])
        return Attempt(
            first.results + second.results,
            first.whole_batch_retry or second.whole_batch_retry,
            (exchange, *first.exchanges, *second.exchanges),
            second.failure or first.failure,
        )
    results = adapter.parse_response(answer, len(items))
    if answer.status == 413:
        results = [_too_large(adapter, result) for result in results]
    return Attempt(
        results, retries.is_retryable_status(answer.status), (exchange,), _whole_failure(answer, results)
    )


def _too_large(adapter: Adapter, result: Result) -> Result:
    if not isinstance(result, Error):
        return result
    message = f"{adapter.label} refused this event as too large (413) even when it was sent alone"
    return replace(result, error_message=f"{message}: {result.error_message}")


def _whole_failure(answer: http.Answer, results: Sequence[Result]) -> throttle.Failure | None:
    """The answer as the destination's throttle sees it: a failed request that asks to be retried (408,
    429, 5xx), or any failed one with a Retry-After, holds the whole destination back."""
    if 200 <= answer.status < 300:
        return None
    # The adapter read the Retry-After into its errors (Adapter.whole_request_error).
    wait = next((r.retry_after for r in results if isinstance(r, Error) and r.retry_after is not None), None)
    if not (retries.is_retryable_status(answer.status) or wait):
        return None
    message = next((r.error_message for r in results if isinstance(r, Error)), f"HTTP {answer.status}")
    return throttle.Failure(answer.status, message, wait)


def _ms_since(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)


def settings_failure(message: str, messages: Sequence[Any]) -> list[Result]:
    error = Error(
        status=None,
        error_type=ErrorType.UNKNOWN_ERROR,
        error_message=f"The destination's settings cannot be used: {message}",
        reason_code=Reason.INVALID_SETTINGS,
    )
    return [replace(error, body=message_) for message_ in messages]


# --- recording ------------------------------------------------------------------------------------


def record(
    claim_: Claim,
    results: Sequence[Result],
    max_retries: int,
    now: dt.datetime,
    whole_batch_retry: bool = False,
    sent: Sequence[history.Sent] = (),
    secrets: Sequence[str] = (),
    failure: throttle.Failure | None = None,
) -> BatchReport:
    """Outcomes, rollup moves, samples and the attempt history (`sent`: the batch requests made, one
    unless a 413 split the batch) for one attempt, in one transaction; rows no longer ours (lease lost,
    or already final) are left alone and not counted."""
    outcomes = claim_.outcomes
    dispositions = retries.dispose_batch([o.attempts_this_round for o in outcomes], results, max_retries, now)
    columns = (
        [o.received_at for o in outcomes],
        [o.id for o in outcomes],
        [str(d.step) for d in dispositions],
        [d.reason_code for d in dispositions],
        [d.status for d in dispositions],
        [d.error_type for d in dispositions],
        [d.error_message[:4000] for d in dispositions],
        [d.next_attempt_at for d in dispositions],
    )
    with transaction.atomic():
        shared = [(o.received_at, o.event_id) for o in outcomes if o.fanout > 1]
        siblings = outbox.lock_siblings(outcomes[0].where.destination_id, shared) if shared else {}
        recorded = outbox.settle(claim_, columns)
        tally, samples = Tally(), SampleBatch()
        whole = _WholeEvent(tally, siblings)
        counts = {Step.DELIVERED: 0, Step.FAILED_DELIVERY: 0, Step.PENDING_RETRY: 0}
        retry_at: dt.datetime | None = None
        attempts = []
        for outcome, result, d in zip(outcomes, results, dispositions, strict=True):
            if outcome.id not in recorded:
                continue
            attempts.append((outcome, d))
            counts[d.step] += 1
            if d.next_attempt_at is not None and (retry_at is None or d.next_attempt_at < retry_at):
                retry_at = d.next_attempt_at
            old, new = (Step(outcome.step), outcome.reason_code), (d.step, d.reason_code)
            tally.move(outcome.received_at, outcome.where, old, new)
            whole.move(outcome, old, new)
            if not samples.wants(now, outcome.where, d.step, d.reason_code, d.error_message):
                continue
            samples.add(
                now,
                outcome.where,
                d.step,
                d.reason_code,
                message_id=claim_.events.get(outcome.event_id, ("",))[0],
                status=d.status,
                error_type=d.error_type,
                error_message=d.error_message,
                sent=result.sent,
                body=result.body,
                response=result.response,
            )
        whole.settle()
        tally.write()
        samples.write()
        if history.enabled():
            history.write(attempts, sent, secrets, now)
    if len(recorded) < len(outcomes):
        log.warning(
            "%d of %d outcomes were no longer claimed; not recorded again",
            len(outcomes) - len(recorded),
            len(outcomes),
        )
    return BatchReport(
        claimed=len(outcomes),
        recorded=len(recorded),
        delivered=counts[Step.DELIVERED],
        failed=counts[Step.FAILED_DELIVERY],
        pending=counts[Step.PENDING_RETRY],
        whole_batch_retry=whole_batch_retry,
        retry_at=retry_at,
        failure=failure,
    )


class _WholeEvent:
    """Moves the rollup row with mapping NULL — the event at the destination as a whole, whose step is
    `fanout.aggregate` of its mappings' — along with a batch's moves. An event that reached one mapping
    moves exactly as that mapping's row does (no query); one that reached several is recomputed from
    its mappings' states, locked before the batch settled (`outbox.lock_siblings`), with this batch's
    changes applied."""

    def __init__(self, tally: Tally, siblings: outbox.Siblings) -> None:
        self.tally = tally
        self.siblings = siblings
        self.changes: dict[tuple[dt.datetime, int], tuple[Claimed, dict[int | None, tuple[Step, str]]]] = {}
        self._wheres: dict[Where, Where] = {}

    def where(self, outcome: Claimed) -> Where:
        if (found := self._wheres.get(outcome.where)) is None:
            found = self._wheres[outcome.where] = replace(outcome.where, mapping_id=None)
        return found

    def move(self, outcome: Claimed, old: tuple[Step, str], new: tuple[Step, str]) -> None:
        if outcome.fanout <= 1:
            self.tally.move(outcome.received_at, self.where(outcome), old, new)
        else:  # several of an event's mappings may move at once (a bulk retry)
            key = (outcome.received_at, outcome.event_id)
            self.changes.setdefault(key, (outcome, {}))[1][outcome.where.mapping_id] = new

    def settle(self) -> None:
        for key, (outcome, news) in self.changes.items():
            states = self.siblings.get(key)
            if not states:
                continue
            before = fanout.aggregate(states)
            after = fanout.aggregate(
                [(m, *news[m]) if m in news else (m, step, reason) for m, step, reason in states]
            )
            self.tally.move(outcome.received_at, self.where(outcome), before, after)


# --- a bulk retry: failed outcomes back in the outbox ---------------------------------------------------


def retry_failed(destination_id: int, rows: Sequence[tuple[dt.datetime, int, int]], job_id: int) -> int:
    """Put these outcomes (received_at, outcome id, event id) back in the outbox, due now and with the
    destination's full set of retries, if they are still failed; their counts move from Failed delivery
    to awaiting delivery for their received minute, per mapping and for the event as a whole, in the
    same transaction. Outcomes no longer failed (delivered since, or taken by another retry) are left
    alone. Returns how many were queued."""
    if not rows:
        return 0
    with transaction.atomic():
        # Every mapping of these events, locked in the order delivery locks them (no deadlock with a
        # worker settling one of them), with the steps and reasons they have before this retry.
        siblings = outbox.lock_siblings(destination_id, [(r[0], r[2]) for r in rows])
        requeued = outbox.requeue_failed(destination_id, [(r[0], r[1]) for r in rows], job_id)
        tally = Tally()
        whole = _WholeEvent(tally, siblings)
        for outcome in requeued:
            states = siblings.get((outcome.received_at, outcome.event_id), [])
            reason = next((r for m, _, r in states if m == outcome.where.mapping_id), outcome.reason_code)
            old, new = (Step.FAILED_DELIVERY, reason), (Step.QUEUED, "")
            tally.move(outcome.received_at, outcome.where, old, new)
            whole.move(outcome, old, new)
        whole.settle()
        tally.write()
    return len(requeued)


# --- one batch, start to end ------------------------------------------------------------------------


def deliver_batch(target: Target) -> BatchReport:
    """Claim, send and record one batch of this destination and mapping; an empty report when none is due."""
    claim_ = outbox.claim(target.destination_id, target.mapping_id, target.claim_size)
    if claim_ is None:
        return BatchReport()
    messages = [claim_.events.get(o.event_id, ("", None))[1] for o in claim_.outcomes]
    results: list[Result | None] = [_not_sendable(o, target, claim_.events) for o in claim_.outcomes]
    to_send = [i for i, result in enumerate(results) if result is None]
    if target.adapter is None:
        tried = Attempt(settings_failure(target.settings_error, [messages[i] for i in to_send]))
    else:
        if target.rate_limit and to_send:
            time.sleep(throttle.spend(target.destination_id, len(to_send), target.rate_limit))
        keys = [idempotency_key(claim_.outcomes[i], claim_.events) for i in to_send]
        tried = attempt(target.adapter, target.fields, [messages[i] for i in to_send], keys)
    for i, result in zip(to_send, tried.results, strict=True):
        results[i] = result
    for exchange in tried.exchanges:
        metrics.observe_request(target.destination_id, exchange.duration_ms / 1000)
    sent = []
    if history.enabled():
        for exchange in tried.exchanges:
            carried = {claim_.outcomes[to_send[p]].id for p in exchange.positions}
            sent.append(history.kept(exchange, carried, target.secrets))
    now = dt.datetime.now(dt.UTC)
    report = record(
        claim_, results, target.max_retries, now, tried.whole_batch_retry, sent, target.secrets, tried.failure
    )
    return replace(report, requested=bool(tried.exchanges))


def idempotency_key(outcome: Claimed, events: dict[int, Any]) -> str:
    """The key the destination can drop this outcome's duplicates by (see `delivery.idempotency`)."""
    where = outcome.where
    message_id = events[outcome.event_id][0]
    return idempotency.event_key(
        where.source_id, message_id, where.destination_id, where.mapping_id, outcome.received_at
    )


def _not_sendable(outcome: Claimed, target: Target, events: dict[int, Any]) -> Error | None:
    """The result of an outcome that must not be sent again, or None."""
    if outcome.event_id not in events:
        return Error(
            status=None,
            error_type=ErrorType.UNKNOWN_ERROR,
            error_message=f"event {outcome.event_id} is no longer stored, so it cannot be sent",
            reason_code=Reason.INTERNAL,
        )
    if outcome.attempts_this_round > target.max_retries + 1 + INTERRUPTED_ALLOWANCE:
        # Claimed again and again without a result being recorded: each time a worker died or lost its
        # lease mid-batch. Giving up keeps one poisonous batch from being retried forever.
        return Error(
            status=None,
            error_type=ErrorType.UNKNOWN_ERROR,
            error_message=(
                f"Gave up after {outcome.attempts_this_round} attempts; {INTERRUPTED_ALLOWANCE + 1} or more"
                " of them were interrupted before an answer was recorded (a worker stopped in the middle of"
                " the batch)"
            ),
            reason_code=Reason.RETRIES_EXHAUSTED,
        )
    return None
