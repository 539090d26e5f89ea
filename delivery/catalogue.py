"""The discard catalogue: for every reason code an event can be dropped with (delivery.reasons.Reason), at
each pipeline step, what happened and what the operator can do about it. Shown in discard tables,
samples and the API."""

from dataclasses import dataclass, replace

from delivery.reasons import Reason
from delivery.steps import Step


@dataclass(frozen=True)
class DiscardReason:
    code: Reason | str  # a Reason; the generic entry of a code the catalogue does not know keeps it as is
    step: Step
    label: str
    what_happened: str
    remedy: str
    # True where the pipeline retries these events by itself before giving up.
    retried: bool = False


# Short names for the steps, so each entry below reads as: code, step, label, what happened, remedy.
_INGEST = Step.FAILED_ON_INGEST
_AT_SOURCE = Step.FILTERED_AT_SOURCE
_AT_DESTINATION = Step.FILTERED_AT_DESTINATION
_DELIVERY = Step.FAILED_DELIVERY

_CHECK_CONSENT = (
    "Fix how the client builds its consent preference update events; the samples show the payloads."
)

_ENTRIES: list[DiscardReason] = [
    # Failed on ingest: the tracking API received the request but validation rejected the message(s).
    DiscardReason(
        Reason.EMPTY_BATCH_RESULT,
        _INGEST,
        "Empty batch result",
        "The batch was read, but no message in it was left to accept once each one had been processed.",
        "Check how the client builds its batches; the samples show the payloads that arrived.",
    ),
    DiscardReason(
        Reason.SOURCE_DISABLED,
        _INGEST,
        "Source disabled",
        "The source the write key belongs to is disabled, so its events are not accepted.",
        "Enable the source in its settings if it should be sending events again.",
    ),
    DiscardReason(
        Reason.EMPTY_BATCH,
        _INGEST,
        "Batch is empty",
        "A batch request arrived with no messages in its batch array.",
        "Check that the client only flushes batches that hold at least one message.",
    ),
    DiscardReason(
        Reason.MULTI_USER_ERROR,
        _INGEST,
        "Error in part of a batch",
        "Some messages in the batch failed validation; only the messages without errors were accepted.",
        "Look at each rejected message in the samples for its own error and fix the client accordingly.",
    ),
    DiscardReason(
        Reason.NO_USER_ANON_ID,
        _INGEST,
        "No userId or anonymousId",
        "The message carried neither a userId nor an anonymousId.",
        "Make the client set a userId, an anonymousId, or both on every message.",
    ),
    DiscardReason(
        Reason.EVENT_NOT_DEFINED,
        _INGEST,
        "Event name missing",
        "A track message had no event name.",
        "Make every track call pass an event name.",
    ),
    DiscardReason(
        Reason.EVENT_NOT_STRING,
        _INGEST,
        "Event name not a string",
        "A track message's event field was not a string.",
        "Send the event name as a string.",
    ),
    DiscardReason(
        Reason.PROPERTIES_NOT_OBJECT,
        _INGEST,
        "Properties not an object",
        "The properties field was present but was not a JSON object.",
        "Send properties as a JSON object of key/value pairs, or leave the field out.",
    ),
    DiscardReason(
        Reason.TRAITS_NOT_OBJECT,
        _INGEST,
        "Traits not an object",
        "The traits field was present but was not a JSON object.",
        "Send traits as a JSON object of key/value pairs, or leave the field out.",
    ),
    DiscardReason(
        Reason.NAME_NOT_STRING,
        _INGEST,
        "Name must be a non-empty string",
        "A page or screen message had a name that was empty or not a string.",
        "Send the page or screen name as a non-empty string, or leave the field out.",
    ),
    DiscardReason(
        Reason.CATEGORY_NOT_STRING,
        _INGEST,
        "Category must be a non-empty string",
        "A page or screen message had a category that was empty or not a string.",
        "Send the category as a non-empty string, or leave the field out.",
    ),
    DiscardReason(
        Reason.ID_REQUIRED,
        _INGEST,
        "Identifier missing",
        "The message had no identifier: every message needs a userId, an anonymousId, or both.",
        "Make the client set a userId or an anonymousId on every message.",
    ),
    DiscardReason(
        Reason.ID_NOT_STRING,
        _INGEST,
        "Identifier not a string",
        "The userId or anonymousId was an empty string or not a string.",
        "Send identifiers as non-empty strings (convert numeric ids to strings in the client).",
    ),
    DiscardReason(
        Reason.CONSENT_CATEGORYPREFERENCES_SHOULD_EXIST,
        _INGEST,
        "Consent category preferences missing",
        "A consent preference update event had no context.consent.categoryPreferences object.",
        _CHECK_CONSENT,
    ),
    DiscardReason(
        Reason.CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_OBJECT,
        _INGEST,
        "Consent category preferences not an object",
        "A consent preference update event had context.consent.categoryPreferences, but not as an object.",
        _CHECK_CONSENT,
    ),
    DiscardReason(
        Reason.CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_BOOL,
        _INGEST,
        "Consent category preference not true/false",
        "A consent category in context.consent.categoryPreferences had a value other than true or false.",
        _CHECK_CONSENT,
    ),
    DiscardReason(
        Reason.DEVICE_ADVERTISINGID_SHOULD_BE_STRING,
        _INGEST,
        "Device advertisingId not a string",
        "context.device.advertisingId was present but was not a string.",
        "Send the advertising id as a string, or leave it out.",
    ),
    DiscardReason(
        Reason.CONSENT_VERSION_SHOULD_BE_NUMBER,
        _INGEST,
        "Consent version not a number",
        "The consent version on a consent event was not a number.",
        _CHECK_CONSENT,
    ),
    DiscardReason(
        Reason.BAD_REQUEST_BODY,
        _INGEST,
        "Could not decode payload",
        "The request body could not be decoded: wrong content type, malformed JSON, or a broken encoding.",
        "Send a well-formed JSON body with the header Content-Type: application/json.",
    ),
    DiscardReason(
        Reason.BAD_REQUEST,
        _INGEST,
        "Could not parse request",
        "The request's content type is not supported, or its body could not be parsed.",
        "Send a well-formed JSON body with the header Content-Type: application/json.",
    ),
    DiscardReason(
        Reason.UNKNOWN_SOURCE,
        _INGEST,
        "Unknown write key",
        "The request had no write key, or its write key does not belong to any source.",
        "Set the client's write key (sent as the basic-auth user name) to the one shown on the source.",
    ),
    # Failed on ingest, checks this product adds.
    DiscardReason(
        Reason.UNSUPPORTED_TYPE,
        _INGEST,
        "Unsupported message type",
        "The message type was not one of track, identify, page, screen, group or alias.",
        "Send one of the supported message types, or post to the endpoint that matches the call.",
    ),
    DiscardReason(
        Reason.INVALID_TIMESTAMP,
        _INGEST,
        "Invalid timestamp",
        "timestamp, sentAt or originalTimestamp was not a date that could be read as ISO 8601.",
        "Send dates as ISO 8601 strings with a time zone, such as 2024-05-01T12:00:00Z.",
    ),
    DiscardReason(
        Reason.MESSAGE_TOO_LARGE,
        _INGEST,
        "Message too large",
        "A single message was larger than 32 KB, the most the tracking API accepts for one message.",
        "Trim what the client puts in the message (large properties, traits or context fields).",
    ),
    DiscardReason(
        Reason.NESTING_TOO_DEEP,
        _INGEST,
        "Nested too deeply",
        "A message nested objects and arrays more than 64 levels deep (or the request body more than"
        " about 1,000, too deep to read at all), past what the pipeline can store and check.",
        "Flatten what the client puts in the message; the sample shows it, cut at 64 levels.",
    ),
    DiscardReason(
        Reason.ORIGIN_NOT_ALLOWED,
        _INGEST,
        "Origin not allowed",
        "A web page on an origin the source's allowed origins do not list sent a request with its write"
        " key; it was refused (403) and nothing in it was stored.",
        "If the page is yours, add its origin (scheme, host and port, as the browser's Origin header has"
        " it) to the source's allowed origins; otherwise someone else is using the write key.",
    ),
    DiscardReason(
        Reason.PREVIOUS_ID_REQUIRED,
        _INGEST,
        "Alias without previousId",
        "An alias message had no previousId (a non-empty string): there was nothing to merge the user with.",
        "Make alias calls pass the previous identity, e.g. analytics.alias(newUserId, previousId).",
    ),
    DiscardReason(
        Reason.GROUP_ID_REQUIRED,
        _INGEST,
        "Group without groupId",
        "A group message had no groupId (a non-empty string): there was no group to associate the user with.",
        "Make group calls pass the group's id, e.g. analytics.group(groupId, traits).",
    ),
    # Filtered at source: dropped by the source's schema controls or its tracking plan.
    DiscardReason(
        Reason.COMMON_SCHEMA_VIOLATION,
        _AT_SOURCE,
        "Common schema violation",
        "The event broke the common JSON schema of the source's tracking plan.",
        "If the event is wrong, fix the client. If the event is right, extend the tracking plan's common "
        "schema to allow it, or relax the source's schema settings so violations are not blocked.",
    ),
    DiscardReason(
        Reason.EVENT_SETTING,
        _AT_SOURCE,
        "Blocked by event setting",
        "The source is set to discard events of this type or name.",
        "Review the source's schema settings and unblock this event if it should flow.",
    ),
    DiscardReason(
        Reason.SCHEMA_VIOLATION,
        _AT_SOURCE,
        "Schema violation",
        "The event broke the tracking plan's JSON schema, and the source is set to block such events.",
        "If the event is wrong, fix the client. If the event is right, update the tracking plan's "
        "schema for it, or relax the source's schema settings so violations are not blocked.",
    ),
    DiscardReason(
        Reason.UNPLANNED,
        _AT_SOURCE,
        "Unplanned event",
        "The event is not in the source's tracking plan, and the source is set to block unplanned events.",
        "Add the event to the tracking plan, or allow unplanned events in the source's schema settings.",
    ),
    DiscardReason(
        Reason.UNPLANNED_AND_SCHEMA_VIOLATION,
        _AT_SOURCE,
        "Unplanned event and schema violation",
        "The event is not in the tracking plan and also broke the plan's JSON schema; the source blocks "
        "unplanned events.",
        "Add the event to the tracking plan with a schema it meets, or allow unplanned events in the "
        "source's schema settings.",
    ),
    # Filtered at destination: dropped while routing, before any request to the destination.
    DiscardReason(
        Reason.FILTERED_BY_RULES,
        _AT_DESTINATION,
        "Filtered by rules",
        "The event matched one of the destination's filter rules, which drops it.",
        "Nothing to do if that is intended. Otherwise make the filter rule narrower so it no longer "
        "matches these events.",
    ),
    DiscardReason(
        Reason.FILTERED_BY_INTEGRATIONS_OBJECT,
        _AT_DESTINATION,
        "Filtered by integrations object",
        "The message's integrations object turned this destination off (by its name, or with All: false).",
        "If these events should reach the destination, stop the client from disabling it in the "
        "integrations object.",
    ),
    DiscardReason(
        Reason.UNKNOWN_INTEGRATION,
        _AT_DESTINATION,
        "Unknown integration",
        "The message's integrations object names a destination that is not known to the pipeline.",
        "Correct the names in the client's integrations object so they match destination names exactly.",
    ),
    DiscardReason(
        Reason.MESSAGE_SENT_CLIENT_SIDE,
        _AT_DESTINATION,
        "Sent client side",
        "The client already sent this event straight from the app or website to the destination.",
        "Nothing to do: the event is not sent a second time from the server, so it does not count as "
        "delivered here.",
    ),
    DiscardReason(
        Reason.UNSUPPORTED_EVENT_TYPE,
        _AT_DESTINATION,
        "Unsupported event type",
        "The destination does not accept events of this type, so it was not routed there.",
        "Nothing to fix in the event. Check which event types the destination kind accepts if you "
        "expected it to receive these.",
    ),
    DiscardReason(
        Reason.INVALID_SETTINGS,
        _AT_DESTINATION,
        "Invalid settings",
        "The destination lacks one or more settings that this event type needs.",
        "Fill in the missing settings on the destination.",
    ),
    DiscardReason(
        Reason.INTERNAL,
        _AT_DESTINATION,
        "Internal error",
        "Something went wrong inside the pipeline while routing the event to this destination.",
        "Look in the pipeline's logs around the times of the samples for the underlying error.",
    ),
    DiscardReason(
        Reason.NO_MATCHING_MAPPING,
        _AT_DESTINATION,
        "No matching mapping",
        "None of the destination's mappings has a trigger that accepts this event.",
        "Add a mapping whose trigger matches the event if the destination should receive it.",
    ),
    DiscardReason(
        Reason.FILTERED_AT_MAPPING,
        _AT_DESTINATION,
        "Filtered at mapping",
        "This mapping's trigger did not match the event. The destination may still have received it "
        "through another mapping.",
        "Nothing to do if the event is meant for another mapping; otherwise widen this mapping's trigger.",
    ),
    DiscardReason(
        Reason.FILTERED_BY_END_USER_CONSENT,
        _AT_DESTINATION,
        "Filtered by end-user consent",
        "The user's consent preferences on the message do not allow sending it to this destination.",
        "Nothing to do when the user declined. If it is unexpected, check the consent categories the "
        "destination belongs to and the preferences the client sends.",
    ),
    DiscardReason(
        Reason.FAILED_DATA_ENCRYPTION,
        _AT_DESTINATION,
        "Data encryption failed",
        "Encrypting fields of the event failed, or the encrypted values could not be sent.",
        "Check the destination's encryption settings and that it accepts encrypted values in those fields.",
    ),
    # Filtered at destination, reasons this product adds.
    DiscardReason(
        Reason.MAPPING_DISABLED,
        _AT_DESTINATION,
        "Mapping disabled",
        "A mapping whose trigger matches the event is disabled, so it did not send the event.",
        "Enable the mapping on the destination's Mappings page if it should send these events.",
    ),
    DiscardReason(
        Reason.DESTINATION_DISABLED,
        _AT_DESTINATION,
        "Destination disabled",
        "The destination was disabled when the event was routed, so nothing was sent to it.",
        "Enable the destination if it should receive events; they are dropped while it stays disabled.",
    ),
    # Failed delivery: the request to the destination failed, or the destination refused the events.
    DiscardReason(
        Reason.INVALID_SETTINGS,
        _DELIVERY,
        "Invalid settings",
        "The event could not be sent because a setting the destination needs for this event type is "
        "missing or wrong.",
        "Review the destination's settings and fill in or correct what it needs.",
    ),
    DiscardReason(
        Reason.HTTP_429,
        _DELIVERY,
        "429 Too Many Requests",
        "The destination rate-limited the pipeline: too many requests in too short a time.",
        "Retried automatically, honouring the destination's Retry-After. If events still fail, ask the "
        "destination's provider for a higher rate limit, or raise the batch size to send fewer requests.",
        retried=True,
    ),
    DiscardReason(
        Reason.EREFUSED,
        _DELIVERY,
        "Connection refused",
        "The destination's server refused the connection.",
        "Retried automatically. If it persists, check the destination's address and port, that the "
        "service is running, and that no firewall blocks it.",
        retried=True,
    ),
    DiscardReason(
        Reason.UNSUPPORTED_EVENT_TYPE,
        _DELIVERY,
        "Unsupported event type",
        "The destination answered that it does not support this event type.",
        "Stop routing this event type to the destination, for example with a filter or a narrower "
        "mapping trigger.",
    ),
    DiscardReason(
        Reason.MESSAGE_REJECTED,
        _DELIVERY,
        "Message rejected",
        "The destination blocked the event.",
        "Compare the sample's payload with what the destination requires: required fields and the type "
        "of every field.",
    ),
    DiscardReason(
        Reason.HTTP_400,
        _DELIVERY,
        "400 Bad Request",
        "The destination's API rejected the payload as invalid.",
        "Read the destination's response in the samples for which field it objects to, then fix the "
        "mapping or the event.",
    ),
    DiscardReason(
        Reason.BAD_REQUEST,
        _DELIVERY,
        "Bad request",
        "The destination's API rejected the payload as invalid.",
        "Read the destination's response in the samples for which field it objects to, then fix the "
        "mapping or the event.",
    ),
    DiscardReason(
        Reason.ETIMEDOUT,
        _DELIVERY,
        "Timed out",
        "The destination did not send its complete answer in time (DELIVERY_READ_TIMEOUT for each read, "
        "DELIVERY_REQUEST_DEADLINE for the whole request). A request that timed out may still have "
        "reached the destination and been accepted: delivered may be under-reported, and the retry can "
        "reach the destination as a duplicate.",
        "Nothing to do at first: the delivery is retried automatically. If it keeps happening, check the "
        "destination's health and response times. To drop the duplicates a retry after a timeout can "
        "cause, have the destination deduplicate on each event's idempotency key (see the destinations "
        "documentation).",
        retried=True,
    ),
    DiscardReason(
        Reason.ENOTFOUND,
        _DELIVERY,
        "Host not found",
        "The destination's host name could not be resolved: the address does not exist or is mistyped.",
        "Check the URL in the sample's request and in the destination's settings, and that the "
        "pipeline's hosts can resolve it.",
    ),
    DiscardReason(
        Reason.INTERNAL,
        _DELIVERY,
        "Internal error",
        "There was a problem connecting to the destination's server.",
        "Nothing to do at first: events are retried until a connection succeeds.",
        retried=True,
    ),
    DiscardReason(
        Reason.HTTP_404,
        _DELIVERY,
        "404 Not Found",
        "The destination could not find what the request asked for.",
        "Check the endpoint URL for typos, and any ids in the destination's settings (an account, list or "
        "object may have been moved or deleted).",
    ),
    DiscardReason(
        Reason.HTTP_307,
        _DELIVERY,
        "307 Temporary Redirect",
        "The destination answered with a redirect to another address instead of accepting the events.",
        "Set the destination's URL to the address the redirect points to (the sample's Location header).",
    ),
    DiscardReason(
        Reason.HTTP_502,
        _DELIVERY,
        "502 Bad Gateway",
        "A gateway in front of the destination got an invalid answer from the server behind it.",
        "Nothing to do at first: the request is retried automatically.",
        retried=True,
    ),
    DiscardReason(
        Reason.HTTP_503,
        _DELIVERY,
        "503 Service Unavailable",
        "The destination could not handle the request at that moment.",
        "Nothing to do at first: the request is retried automatically.",
        retried=True,
    ),
    DiscardReason(
        Reason.RETRY,
        _DELIVERY,
        "Retry",
        "The first request failed and was sent again.",
        "Nothing to do at first: the pipeline keeps retrying within the destination's retry budget.",
        retried=True,
    ),
    DiscardReason(
        Reason.HTTP_401,
        _DELIVERY,
        "401 Unauthorized",
        "The destination refused the credentials: they are invalid or have expired.",
        "Get fresh credentials from the destination's provider and update them in the destination's "
        "settings.",
    ),
    DiscardReason(
        Reason.ECONNRESET,
        _DELIVERY,
        "Connection reset",
        "The connection to the destination's server was dropped before an answer came back.",
        "Retried automatically. If it persists, check the destination's settings and whether the service "
        "is still running; disable the destination if it is no longer in use.",
        retried=True,
    ),
    # Failed delivery, reasons this product adds.
    DiscardReason(
        Reason.PAYLOAD_VALIDATION_FAILED,
        _DELIVERY,
        "Payload validation failed",
        "A required field was missing or invalid: either the destination adapter refused the event "
        "before sending it, or the destination answered that the field was invalid or required.",
        "See which field the sample names, then fix the mapping's fields or the event the client sends.",
    ),
    DiscardReason(
        Reason.HTTP_403,
        _DELIVERY,
        "403 Forbidden",
        "The destination accepted the credentials but they lack permission for this request.",
        "Grant the credentials the needed permissions at the destination, or use credentials that have them.",
    ),
    DiscardReason(
        Reason.HTTP_408,
        _DELIVERY,
        "408 Request Timeout",
        "The destination gave up waiting for the request to complete.",
        "Nothing to do at first: the request is retried automatically. If it keeps happening, try a "
        "smaller batch size.",
        retried=True,
    ),
    DiscardReason(
        Reason.HTTP_500,
        _DELIVERY,
        "500 Internal Server Error",
        "The destination failed with an error of its own while handling the request.",
        "Nothing to do at first: the request is retried automatically. If it persists, the destination's "
        "response in the samples may say why.",
        retried=True,
    ),
    DiscardReason(
        Reason.HTTP_504,
        _DELIVERY,
        "504 Gateway Timeout",
        "A gateway in front of the destination timed out waiting for the server behind it.",
        "Nothing to do at first: the request is retried automatically. If it keeps happening, try a "
        "smaller batch size.",
        retried=True,
    ),
    DiscardReason(
        Reason.RETRIES_EXHAUSTED,
        _DELIVERY,
        "Retries exhausted",
        "A retryable failure kept happening until the destination's retry budget ran out (by default 6 "
        "more attempts over about four hours). The sample shows the last status and message.",
        "Fix the cause the last status and message point to; these events are not retried again.",
    ),
    DiscardReason(
        Reason.PRIVATE_ADDRESS,
        _DELIVERY,
        "Private address refused",
        "The destination's URL resolves to a loopback, private or link-local address, and this deployment "
        "does not allow sending to those.",
        "Fix the destination's URL, or set DELIVERY_ALLOW_PRIVATE_ADDRESSES if sending to private "
        "addresses is intended.",
    ),
    DiscardReason(
        Reason.UNREADABLE_RESPONSE,
        _DELIVERY,
        "Unreadable response",
        "The destination answered with a per-event status code, but its body could not be read as the "
        "expected JSON, so each event's outcome is unknown and none is counted as delivered.",
        "Check the response body in the samples; the destination may have changed its API or an "
        "intermediate proxy may be answering instead of it.",
    ),
    DiscardReason(
        Reason.UNKNOWN_ERROR,
        _DELIVERY,
        "Unknown error",
        "Delivery failed with an error the pipeline could not classify.",
        "Read the error message in the samples and the pipeline's logs around the same time.",
    ),
]

CATALOGUE: dict[tuple[Step, Reason], DiscardReason] = {(r.step, r.code): r for r in _ENTRIES}
# Retryable delivery failures also show while the retry is waiting: same text, the pending step.
CATALOGUE |= {
    (Step.PENDING_RETRY, r.code): replace(r, step=Step.PENDING_RETRY) for r in _ENTRIES if r.retried
}


def reasons_for(step: Step | str) -> list[DiscardReason]:
    """Every known reason of one step, in catalogue order."""
    return [reason for (s, _), reason in CATALOGUE.items() if s == step]


def describe(step: Step | str, code: str) -> DiscardReason:
    """The catalogue entry; for a code the catalogue does not know, a generic entry that still names
    the code (never raises for a code; a step that is not a Step is a ValueError)."""
    step, code = Step(step), str(code)
    if found := _find(step, code):
        return found
    if step == Step.PENDING_RETRY and (failed := _find(Step.FAILED_DELIVERY, code)):
        # Waiting for a retry means it is being retried, whatever the failure would be once retries stop.
        return replace(failed, step=step, retried=True)
    return _generic(step, code)


def _find(step: Step, code: str) -> DiscardReason | None:
    if found := CATALOGUE.get((step, code)):
        return found
    # Some producers write the same code in another case (ETIMEDOUT / etimedout, SOURCE_DISABLED).
    folded = code.casefold()
    return next((r for (s, c), r in CATALOGUE.items() if s == step and c.casefold() == folded), None)


def _generic(step: Step, code: str) -> DiscardReason:
    if code.isdigit() and step in (Step.PENDING_RETRY, Step.FAILED_DELIVERY):
        label = f"Status {code}"
        what = f"The destination answered with status {code}, which the catalogue does not describe."
    else:
        label = f"Unknown reason: {code}" if code else "Unknown reason"
        what = f"Events at this step carry the reason code {code!r}, which the catalogue does not describe."
    remedy = "Read the error message and response in the samples, and the pipeline's logs around that time."
    return DiscardReason(code, step, label, what, remedy)
