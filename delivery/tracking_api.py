"""The tracking API: the endpoints the common analytics clients post to. Views read the HTTP request
(write key, body) and answer; validation and storage are ingest's."""

import base64
import binascii

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from delivery import ingest, ingest_limits, refused
from delivery.ingest import RequestRejected
from delivery.reasons import Reason
from delivery.validation import SourceRef

NO_WRITE_KEY = "No write key: send it as the HTTP basic-auth user name, or as writeKey in the body."
UNKNOWN_WRITE_KEY = "Unknown write key: no source has this write key."
CHUNKED_UNREADABLE = (
    "This web server does not pass on a chunked request body (Transfer-Encoding: chunked);"
    " send a Content-Length."
)


def write_key_from_header(authorization: str) -> str:
    """The user name of HTTP basic auth ("Basic base64(writeKey:)"), or ""."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def read_body(request: HttpRequest) -> bytes:
    """The request body, read up to one byte over the size limit (ingest.too_large past it), so that a
    big body is refused without being held whole.

    Without a Content-Length (Transfer-Encoding: chunked), Django's WSGI request reads nothing: a WSGI
    server that decodes chunked bodies says so with wsgi.input_terminated, and its input is read to its
    end instead. Under ASGI (gunicorn.conf.py) the request stream is the whole body either way."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > ingest.MAX_REQUEST_BYTES:
        raise ingest.too_large(int(declared))
    stream = request
    if not declared and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        environ = getattr(request, "environ", {})
        if "wsgi.input" in environ:  # a WSGI server, which gunicorn.conf.py is not
            if not environ.get("wsgi.input_terminated"):
                raise RequestRejected(411, Reason.BAD_REQUEST_BODY, CHUNKED_UNREADABLE)
            stream = environ["wsgi.input"]
    raw = stream.read(ingest.MAX_REQUEST_BYTES + 1)
    if len(raw) > ingest.MAX_REQUEST_BYTES:
        raise ingest.too_large(len(raw))
    return raw


def _error(error: RequestRejected) -> JsonResponse:
    return JsonResponse({"success": False, "code": error.code, "message": error.message}, status=error.status)


def _too_many(refusal: ingest_limits.Refusal) -> JsonResponse:
    """429 with Retry-After: the analytics clients wait and send the same events again."""
    body = {"success": False, "code": "rate_limited", "message": refusal.message}
    return JsonResponse(body, status=429, headers={"Retry-After": str(refusal.retry_after)})


def origin_refused(source: SourceRef, origin: str) -> RequestRejected | None:
    """A page on an origin the source does not allow (server-side clients send no Origin: not refused)."""
    if not source.allowed_origins or not origin or origin.rstrip("/").lower() in source.allowed_origins:
        return None
    return RequestRejected(
        403,
        Reason.ORIGIN_NOT_ALLOWED,
        f"The origin {origin[:200]} may not send to this source: add it to the source's allowed origins.",
    )


def refuse(request: HttpRequest, error: RequestRejected, source: SourceRef | None, key: str) -> JsonResponse:
    """Answer a request refused before any event was read, and count it (refused.py): under its source,
    else under its write key's first characters. No event is counted: none could be read."""
    refused.record(
        source_id=source.id if source else None,
        write_key=key,
        code=str(error.code),
        status=error.status,
        message=error.message,
        origin=request.headers.get("Origin", ""),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return _error(error)


def receive(request: HttpRequest, call: str | None) -> JsonResponse:
    # The write key: basic auth (server-side clients, RudderStack), else ?writeKey= (beacons), else the body.
    key = write_key_from_header(request.headers.get("Authorization", "")) or text_param(
        request.GET.get("writeKey")
    )
    if refusal := ingest_limits.check(key):
        return _too_many(refusal)
    source = ingest.find_source(key)
    if key and source is None:
        return refuse(request, RequestRejected(401, Reason.UNKNOWN_SOURCE, UNKNOWN_WRITE_KEY), None, key)
    try:
        body = ingest.decode_body(read_body(request), request.headers.get("Content-Encoding", ""))
        messages, defaults = ingest.messages_of(body, call)
    except RequestRejected as error:
        return refuse(request, error, source, key)
    if source is None:
        key = body.get("writeKey")
        if not isinstance(key, str) or not key:
            return refuse(request, RequestRejected(401, Reason.UNKNOWN_SOURCE, NO_WRITE_KEY), None, "")
        if refusal := ingest_limits.check(key):
            return _too_many(refusal)
        source = ingest.find_source(key)
        if source is None:
            return refuse(request, RequestRejected(401, Reason.UNKNOWN_SOURCE, UNKNOWN_WRITE_KEY), None, key)
    if error := origin_refused(source, request.headers.get("Origin", "")):
        return refuse(request, error, source, key)
    receipt = ingest.ingest(source, messages, call=call, defaults=defaults)
    if receipt.all_too_large:
        return _error(RequestRejected(413, Reason.MESSAGE_TOO_LARGE, ingest.TOO_LARGE_MESSAGE))
    return JsonResponse({"success": True})


def endpoint(call: str | None):
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> JsonResponse:
        return receive(request, call)

    view.__name__ = f"{call or 'batch'}_endpoint"
    return view


def text_param(value: str | None) -> str:
    return value if value and "\x00" not in value else ""


@csrf_exempt
@require_POST
def metrics(request: HttpRequest) -> JsonResponse:
    """/v1/m: the client libraries' own telemetry (analytics-next posts it). Accepted and not counted:
    it carries no events."""
    return JsonResponse({"success": True})


batch = endpoint(None)
track = endpoint("track")
identify = endpoint("identify")
page = endpoint("page")
screen = endpoint("screen")
group = endpoint("group")
alias = endpoint("alias")
