"""Event endpoints of the REST API: find events by messageId, userId or anonymousId and follow each one
to every destination and mapping, attempt by attempt; read a batch request as it was sent and
answered; list a destination's undelivered events (JSON pages by cursor, or the whole list as CSV).

Only events of the caller's workspaces are ever returned; another workspace's event, request or
destination answers 404."""

from django.http import Http404, StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery.history import BODY_LIMIT
from delivery.models import Destination, Source
from overview import windows
from overview.figures import events
from overview.figures.results import FigureError
from overview.parameters import MAX_ID, mapping_for, text
from overview.tenancy import get_scoped_or_404, workspaces_for

MAX_TEXT = 1000  # longer than any messageId, userId or filter value worth looking for


def workspace_ids(request: Request) -> list[int]:
    return list(workspaces_for(request.user).values_list("id", flat=True))


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the first attempt.")
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(help_text="The batch request's duration; 0 when nothing was sent.")
    step = serializers.CharField(
        help_text="Where the attempt left the event: delivered, pending_retry or failed_delivery."
    )
    reason_code = serializers.CharField()
    status = serializers.IntegerField(
        allow_null=True, help_text="The HTTP status; null when no answer came back."
    )
    error_type = serializers.CharField()
    error_message = serializers.CharField()
    retry_at = serializers.DateTimeField(allow_null=True, help_text="When the next attempt was due.")
    request = serializers.SerializerMethodField(
        help_text="The batch request's URL in this API; null when none was sent."
    )

    def get_request(self, attempt) -> str | None:
        if attempt.request_id is None:
            return None
        return f"/api/v1/requests/{attempt.request_id}/"


class DeliverySerializer(serializers.Serializer):
    destination = serializers.IntegerField(source="destination_id")
    destination_name = serializers.CharField(source="destination")
    mapping = serializers.IntegerField(source="mapping_id", allow_null=True)
    mapping_name = serializers.CharField(source="mapping")
    step = serializers.CharField(help_text="Where the event stands at this destination and mapping now.")
    reason = serializers.CharField(
        source="reason_code", help_text="The reason code; empty when delivered or queued."
    )
    reason_label = serializers.CharField(source="reason")
    remedy = serializers.CharField()
    status = serializers.IntegerField(allow_null=True)
    error_type = serializers.CharField()
    error_message = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    attempts = AttemptSerializer(many=True)


class IngestSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(
        ["accepted", "failed_on_ingest"],
        help_text="accepted: the event passed ingest and was stored and routed; failed_on_ingest: the "
        "message was refused (its reason below), kept for lookups, never routed.",
    )
    reason_code = serializers.CharField(help_text="The failed-on-ingest code (see the catalogue).")
    reason = serializers.CharField()
    remedy = serializers.CharField()
    error_message = serializers.CharField(help_text="What was wrong with this message.")


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The event's id (/api/v1/events/<id>/), or for a message that failed on ingest its id "
        "among those (/api/v1/events/rejected/<id>/)."
    )
    message_id = serializers.CharField()
    received_at = serializers.DateTimeField()
    source = serializers.IntegerField(source="source_id")
    source_name = serializers.CharField(source="source")
    type = serializers.CharField()
    name = serializers.CharField()
    body = serializers.JSONField(help_text="The event as received (with receivedAt).")
    ingest = IngestSerializer()
    deliveries = DeliverySerializer(many=True)


class BatchRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField(help_text="When the request started.")
    destination = serializers.IntegerField(source="destination_id")
    mapping = serializers.IntegerField(source="mapping_id", allow_null=True)
    size = serializers.IntegerField(help_text="Events in the request.")
    url = serializers.CharField(help_text="Without user info or query string.")
    request_headers = serializers.DictField(help_text="Credentials redacted.")
    request_body = serializers.CharField(help_text=f"Secrets redacted, cut at {BODY_LIMIT} characters.")
    request_bytes = serializers.IntegerField(help_text="The body's full size as sent.")
    status = serializers.IntegerField(allow_null=True)
    response_headers = serializers.DictField()
    response_body = serializers.CharField()
    response_bytes = serializers.IntegerField()
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(help_text="The transport error when no answer came back.")


LOOKUP_PARAMETERS = [
    OpenApiParameter("message_id", str),
    OpenApiParameter("user_id", str),
    OpenApiParameter("anonymous_id", str),
    OpenApiParameter("source", int, description="Only events of this source."),
    OpenApiParameter("destination", int, description="Only events routed to this destination."),
]


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_ID):
        raise ParseError(f"{name} must be an id, not {value[:40]!r}.")
    return int(value)


def _text(params, name: str) -> str:
    """A text parameter, stripped; a NUL character is a ValueError (no stored value has one)."""
    try:
        return (text(params.get(name), name) or "").strip()[:MAX_TEXT]
    except FigureError as bad:
        raise ValueError(str(bad)) from bad


class EventLookupView(APIView):
    """Events matching every key given (at least one of message_id, user_id, anonymous_id), newest first,
    at most 100, each with where it went."""

    @extend_schema(parameters=LOOKUP_PARAMETERS, responses=EventSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = request.query_params
        source_id, destination_id = _int(request, "source"), _int(request, "destination")
        if source_id is not None:
            get_scoped_or_404(Source, request.user, pk=source_id)
        if destination_id is not None:
            get_scoped_or_404(Destination, request.user, pk=destination_id)
        try:
            found = events.find(
                workspace_ids(request),
                message_id=_text(params, "message_id"),
                user_id=_text(params, "user_id"),
                anonymous_id=_text(params, "anonymous_id"),
                source_id=source_id,
                destination_id=destination_id,
            )
        except ValueError as bad:
            raise ParseError(str(bad)) from bad
        return Response(EventSerializer(found, many=True).data)


class EventView(APIView):
    """One event by id, traced; with `read=events.get_rejected`, one message that failed on ingest."""

    read = staticmethod(events.get)

    @extend_schema(responses=EventSerializer)
    def get(self, request: Request, pk: int) -> Response:
        event = self.read(workspace_ids(request), pk)
        if event is None:
            raise Http404("No event here.")
        return Response(EventSerializer(event).data)


class BatchRequestView(APIView):
    @extend_schema(responses=BatchRequestSerializer)
    def get(self, request: Request, pk: int) -> Response:
        found = events.batch_request(workspace_ids(request), pk)
        if found is None:
            raise Http404("No batch request here.")
        return Response(BatchRequestSerializer(found).data)


class UndeliveredSerializer(serializers.Serializer):
    received_at = serializers.DateTimeField()
    event = serializers.IntegerField(
        source="event_id", help_text="The event's id: /api/v1/events/<id>/ traces it."
    )
    message_id = serializers.CharField()
    event_type = serializers.CharField()
    event_name = serializers.CharField()
    mapping = serializers.IntegerField(source="mapping_id", allow_null=True)
    step = serializers.CharField(help_text="failed_delivery or pending_retry.")
    reason_code = serializers.CharField()
    status = serializers.IntegerField(allow_null=True)
    error_type = serializers.CharField()
    error_message = serializers.CharField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class UndeliveredPageSerializer(serializers.Serializer):
    results = UndeliveredSerializer(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null on the last."
    )


UNDELIVERED_PARAMETERS = [
    OpenApiParameter("mapping", int),
    OpenApiParameter("step", str, enum=[str(s) for s in events.UNDELIVERED_STEPS]),
    OpenApiParameter("reason", str, description="A reason code."),
    OpenApiParameter("status", int, description="An HTTP status code."),
    OpenApiParameter("error_type", str),
    OpenApiParameter("event_name", str),
    OpenApiParameter("event", int, description="One event's deliveries (its id)."),
    OpenApiParameter(
        "range",
        str,
        enum=list(windows.PRESETS),
        description="Received in this range (default: any time kept).",
    ),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="With end: received from (ISO 8601)."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="Exclusive."),
]


def undelivered_filter(destination: Destination, params) -> events.UndeliveredFilter:
    """The list's filters from a query string; a bad one is a ValueError whose message says which."""
    try:
        mapping = mapping_for(destination, params.get("mapping"))
    except FigureError as bad:
        raise ValueError(str(bad)) from bad
    step = _text(params, "step")
    if step and step not in events.UNDELIVERED_STEPS:
        raise ValueError(f"step must be one of {', '.join(events.UNDELIVERED_STEPS)}, not {step[:40]!r}.")
    status = _text(params, "status")
    if status and not (status.isascii() and status.isdigit() and 100 <= int(status) <= 599):
        raise ValueError(f"status must be an HTTP status code (100 to 599), not {status[:40]!r}.")
    event = _text(params, "event")
    if event and not (event.isascii() and event.isdigit() and int(event) <= MAX_ID):
        raise ValueError(f"event must be an event's id, not {event[:40]!r}.")
    start = end = None
    if any(params.get(name) for name in ("range", "start", "end")):
        try:
            window = windows.from_params(params, timezone.now())
        except windows.WindowError as bad:
            raise ValueError(str(bad)) from bad
        start, end = window.start, window.end
    return events.UndeliveredFilter(
        mapping_id=mapping.id if mapping else None,
        step=step,
        reason_code=_text(params, "reason"),
        status=int(status) if status else None,
        error_type=_text(params, "error_type"),
        event_name=_text(params, "event_name"),
        start=start,
        end=end,
        event_id=int(event) if event else None,
    )


class UndeliveredView(APIView):
    """The destination's events that ended failed or still wait for a retry, newest first, 50 a page."""

    @extend_schema(
        parameters=[*UNDELIVERED_PARAMETERS, OpenApiParameter("cursor", str)],
        responses=UndeliveredPageSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        destination = get_scoped_or_404(Destination, request.user, pk=pk)
        try:
            match = undelivered_filter(destination, request.query_params)
            cursor = _text(request.query_params, "cursor")
            after = events.decode_cursor(cursor) if cursor else None
        except ValueError as bad:
            raise ParseError(str(bad)) from bad
        rows = events.undelivered(destination.id, match, after, events.PAGE_SIZE + 1)
        more = len(rows) > events.PAGE_SIZE
        rows = rows[: events.PAGE_SIZE]
        data = {"results": rows, "next": events.encode_cursor(rows[-1]) if more else None}
        return Response(UndeliveredPageSerializer(data).data)


class UndeliveredCsvView(APIView):
    """The whole undelivered list as CSV, streamed, with the same filters."""

    @extend_schema(parameters=UNDELIVERED_PARAMETERS, responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        destination = get_scoped_or_404(Destination, request.user, pk=pk)
        try:
            match = undelivered_filter(destination, request.query_params)
        except ValueError as bad:
            raise ParseError(str(bad)) from bad
        return csv_response(destination, match)


def csv_response(destination: Destination, match: events.UndeliveredFilter) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events.undelivered_csv(destination.id, match), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="undelivered-{destination.id}-{stamp}.csv"'
    return response


urlpatterns = [
    path("events/", EventLookupView.as_view(), name="api-events"),
    path("events/<int:pk>/", EventView.as_view(), name="api-event"),
    path(
        "events/rejected/<int:pk>/",
        EventView.as_view(read=events.get_rejected),
        name="api-rejected-message",
    ),
    path("requests/<int:pk>/", BatchRequestView.as_view(), name="api-batch-request"),
    path("destinations/<int:pk>/undelivered/", UndeliveredView.as_view(), name="api-undelivered"),
    path("destinations/<int:pk>/undelivered.csv", UndeliveredCsvView.as_view(), name="api-undelivered-csv"),
]
