"""Figure endpoints of the REST API: the same `overview.figures` the pages use, with no lookback.

Window parameters on every endpoint: `range` (10m, 1h, 24h, 7d, 14d) or `start` and `end` (ISO 8601;
without an offset, UTC), and `mapping` (a mapping id of the destination) where it applies.
Another workspace's destination or source answers 404; a bad parameter answers 400 with a message.
"""

import datetime as dt

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery.fanout import RULE as FANOUT_RULE
from delivery.models import Destination, Source
from delivery.steps import PIPELINE
from overview import windows
from overview.figures import pipeline as figures
from overview.figures.recovery import recovery
from overview.figures.results import EventMatch, FigureError, Timeseries
from overview.figures.rollup_query import Scope, destination_scope, source_scope
from overview.parameters import mapping_for, text
from overview.tenancy import get_scoped_or_404


class Rounded(serializers.FloatField):
    """Percentages and changes, to two decimals (None when there is nothing to compare with)."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return None if value is None else round(float(value), 2)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    range = serializers.CharField(help_text="10m, 1h, 24h, 7d, 14d or custom.")


class StepSerializer(serializers.Serializer):
    step = serializers.CharField()
    previous_count = serializers.IntegerField()
    count = serializers.IntegerField(
        help_text="Events at this step in the window. Without a mapping, each event once: a destination "
        "step counts the event at the destination as a whole — " + FANOUT_RULE
    )
    percent = Rounded(
        help_text="Share of received events in the window, in % (for delivered: the delivered share of "
        "received, not the delivery success rate)."
    )
    change = Rounded(
        help_text="Against the previous window: % change of the count, or for discard steps the change "
        "in percentage points of the share of received events."
    )
    deliveries = serializers.IntegerField(
        allow_null=True,
        help_text="Without a mapping, for pending_retry, failed_delivery and delivered: the (event, mapping) "
        "pairs at this step summed over the destination's mappings (an event reaching two mappings is "
        "two deliveries); null otherwise.",
    )
    deliveries_mappings = serializers.IntegerField(
        help_text="How many mappings have deliveries at this step (0 where deliveries is null)."
    )


class WaitingNowSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        help_text="Events waiting for a retry at this moment, whatever the range (each event once without "
        "a mapping); not delayed by the lookback."
    )
    in_window = serializers.IntegerField(help_text="How many of them were received inside the window.")
    oldest_received_at = serializers.DateTimeField(
        allow_null=True, help_text="When the longest-waiting one was received; null when none waits."
    )
    oldest_age_seconds = serializers.IntegerField(allow_null=True, help_text="Its age now, in seconds.")


class PipelineSerializer(serializers.Serializer):
    window = WindowSerializer()
    previous_window = WindowSerializer()
    steps = StepSerializer(many=True)
    pending_retry = serializers.IntegerField(
        help_text="The window's events still pending a retry (settled after the lookback, like every "
        "step); pending_retry_now is the backlog at this moment."
    )
    delivery_success_rate = Rounded(
        help_text="Delivery success rate: delivered ÷ (delivered + failed delivery), in %, each event "
        "once (events pending a retry are not in it); null for a source or when none ended. Not the "
        "delivered step's percent, which is its share of received."
    )
    awaiting_delivery = serializers.IntegerField(help_text="Routed to a mapping, first attempt not made yet.")
    duplicates = serializers.IntegerField(help_text="Repeated messageIds dropped at ingest.")
    pending_retry_now = WaitingNowSerializer(
        source="waiting_now",
        allow_null=True,
        help_text="A destination's retry backlog now; null for a source.",
    )


class DiscardSerializer(serializers.Serializer):
    reason_code = serializers.CharField()
    reason = serializers.CharField()
    count = serializers.IntegerField()
    previous_count = serializers.IntegerField()
    change = Rounded(help_text="Change in percentage points of the share of received events.")
    remedy = serializers.CharField()
    what_happened = serializers.CharField()


class BreakdownSerializer(serializers.Serializer):
    event_type = serializers.CharField()
    event_name = serializers.CharField()
    app_version = serializers.CharField()
    count = serializers.IntegerField()
    previous_count = serializers.IntegerField()
    change = Rounded()


class SampleSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    at = serializers.DateTimeField()
    status = serializers.IntegerField(allow_null=True)
    error_type = serializers.CharField()
    error_message = serializers.CharField()
    sent = serializers.JSONField(allow_null=True, help_text="The JSON posted to the destination.")
    body = serializers.JSONField(allow_null=True, help_text="The event as received.")
    response = serializers.JSONField(allow_null=True, help_text="What the destination answered.")


class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())
    throttled_attempts = serializers.IntegerField(
        allow_null=True,
        help_text="A destination's event attempts answered 429, of the events received in the bucket "
        "(the sum over the buckets is the recovery figure's throttled_attempts); null for a source.",
    )


class TimeseriesSerializer(serializers.Serializer):
    window = WindowSerializer()
    bucket_seconds = serializers.SerializerMethodField()
    steps = serializers.ListField(child=serializers.CharField())
    buckets = BucketSerializer(many=True)

    def get_bucket_seconds(self, series: Timeseries) -> int:
        return int(series.bucket.total_seconds())


WINDOW_PARAMETERS = [
    OpenApiParameter("range", str, enum=list(windows.PRESETS), description="Default 24h."),
    OpenApiParameter("start", dt.datetime, description="With end, instead of range (ISO 8601)."),
    OpenApiParameter("end", dt.datetime, description="Exclusive (ISO 8601)."),
]
MAPPING = OpenApiParameter("mapping", int, description="Narrow the destination steps to one mapping.")
STEP = OpenApiParameter("step", str, required=True, enum=[str(s) for s in PIPELINE])
REASON = OpenApiParameter("reason", str, description="A reason code from the discard table.")
EVENT_FILTERS = [
    OpenApiParameter(name, str, description=f"Only rows whose {name.replace('_', ' ')} is exactly this.")
    for name in ("event_type", "event_name", "app_version")
]


class FigureView(APIView):
    """Parses the window and the scope; subclasses compute one figure."""

    model: type = Destination

    def scope(self, request: Request, pk: int) -> Scope:
        if self.model is Source:
            return source_scope(get_scoped_or_404(Source, request.user, pk=pk))
        destination = get_scoped_or_404(Destination, request.user, pk=pk)
        try:
            mapping = mapping_for(destination, request.query_params.get("mapping"))
        except FigureError as bad:
            raise ParseError(str(bad)) from bad
        return destination_scope(destination, mapping)

    @staticmethod
    def window(request: Request) -> windows.Window:
        try:
            return windows.from_params(request.query_params, timezone.now())
        except windows.WindowError as bad:
            raise ParseError(str(bad)) from bad

    def get(self, request: Request, pk: int) -> Response:
        scope, window = self.scope(request, pk), self.window(request)
        try:
            return Response(self.figure(request, scope, window))
        except FigureError as bad:
            raise ParseError(str(bad)) from bad

    def figure(self, request: Request, scope: Scope, window: windows.Window) -> object:
        raise NotImplementedError


def _step(request: Request) -> str:
    step = request.query_params.get("step", "").strip()
    if not step:
        raise ParseError(f"The step parameter is required: one of {', '.join(PIPELINE)}.")
    return step


def _reason(request: Request) -> str | None:
    return text(request.query_params.get("reason"), "reason")


class PipelineView(FigureView):
    @extend_schema(parameters=[*WINDOW_PARAMETERS, MAPPING], responses=PipelineSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        pipeline = figures.pipeline(scope, window)
        return PipelineSerializer(pipeline).data


class DiscardsView(FigureView):
    @extend_schema(parameters=[*WINDOW_PARAMETERS, MAPPING, STEP], responses=DiscardSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        return DiscardSerializer(figures.discards(scope, window, _step(request)), many=True).data


class BreakdownView(FigureView):
    """Events at a step (and reason) by event type, name and app version, most frequent first;
    `event_type`, `event_name` and `app_version` keep the rows equal to each one given."""

    @extend_schema(
        parameters=[*WINDOW_PARAMETERS, MAPPING, STEP, REASON, *EVENT_FILTERS],
        responses=BreakdownSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        params = request.query_params
        match = EventMatch(**{p.name: text(params.get(p.name), p.name) or "" for p in EVENT_FILTERS})
        table = figures.breakdown(scope, window, _step(request), _reason(request), match)
        return BreakdownSerializer(table.rows, many=True).data


class SamplesView(FigureView):
    @extend_schema(
        parameters=[*WINDOW_PARAMETERS, MAPPING, STEP, REASON], responses=SampleSerializer(many=True)
    )
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        rows = figures.samples(scope, window, _step(request), _reason(request))
        return SampleSerializer(rows, many=True).data


class TimeseriesView(FigureView):
    @extend_schema(parameters=[*WINDOW_PARAMETERS, MAPPING], responses=TimeseriesSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        return TimeseriesSerializer(figures.timeseries(scope, window)).data


class RecoverySerializer(serializers.Serializer):
    delivered = serializers.IntegerField(
        help_text="Deliveries (event × mapping) of the window's events that succeeded, from the attempt "
        "history."
    )
    by_attempt = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Attempt number -> deliveries that succeeded on it: 1 is the first attempt, 2 and more "
        "needed retries (the recovery funnel).",
    )
    first_attempt_percent = Rounded(help_text="Share of the successful deliveries made on the first attempt.")
    time_to_delivery_p50_seconds = Rounded(help_text="Received -> the delivering answer, median.")
    time_to_delivery_p95_seconds = Rounded()
    throttled_attempts = serializers.IntegerField(help_text="Event attempts answered 429.")
    throttled_requests = serializers.IntegerField(help_text="Batch requests answered 429.")
    retry_after_asked_p50_seconds = Rounded(help_text="The Retry-After (seconds) those answers asked for.")
    retry_after_asked_max_seconds = Rounded()
    pending_now = serializers.IntegerField(
        help_text="Deliveries waiting for a retry now (any received time)."
    )
    oldest_pending_received_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="When the next retry falls due.")


class RecoveryView(FigureView):
    """Recovery funnel, time to delivery, throttling and the retry backlog, from the attempt history."""

    @extend_schema(parameters=[*WINDOW_PARAMETERS, MAPPING], responses=RecoverySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    def figure(self, request, scope, window):
        return RecoverySerializer(recovery(scope.destination_ids[0], scope.mapping_id, window)).data


def _routes(prefix: str, model: type, name: str) -> list:
    views = {
        "pipeline": PipelineView,
        "discards": DiscardsView,
        "breakdown": BreakdownView,
        "samples": SamplesView,
        "timeseries": TimeseriesView,
    }
    return [
        path(f"{prefix}/<int:pk>/{figure}/", view.as_view(model=model), name=f"api-{name}-{figure}")
        for figure, view in views.items()
    ]


urlpatterns = [
    *_routes("destinations", Destination, "destination"),
    *_routes("sources", Source, "source"),
    path("destinations/<int:pk>/recovery/", RecoveryView.as_view(), name="api-destination-recovery"),
]
