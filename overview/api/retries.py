"""Bulk retries in the REST API: a dry run that counts what a retry of a destination's failed deliveries
(or a re-route of the events it filtered) would touch, the job that does it, and its progress
(overview.retries). Owners start and cancel jobs;
every member of the workspace sees them."""

from django.core.exceptions import PermissionDenied as NotOwner
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery.models import Destination
from delivery.steps import Step
from overview import retries, tenancy
from overview.api.parsers import JSONParser
from overview.models import RetryJob
from overview.tenancy import get_scoped_or_404


class RetryRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="Count only; change nothing.")
    step = serializers.ChoiceField(
        [str(Step.FAILED_DELIVERY), str(Step.FILTERED_AT_DESTINATION)],
        required=False,
        help_text="failed_delivery (the default): retry failed deliveries; filtered_at_destination: "
        "re-route the events the destination filtered, with its current mappings and filters (then "
        "give no mapping, status or error type).",
    )
    reason = serializers.CharField(required=False, help_text="A reason code.")
    mapping = serializers.IntegerField(required=False)
    status = serializers.IntegerField(required=False, help_text="An HTTP status code.")
    error_type = serializers.CharField(required=False)
    event_name = serializers.CharField(required=False)
    event = serializers.IntegerField(required=False, help_text="One event's deliveries (its id).")
    range = serializers.CharField(required=False, help_text="Received in this range (10m, 1h, 24h, 7d, 14d).")
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


class MappingCountSerializer(serializers.Serializer):
    mapping = serializers.IntegerField(source="mapping.id", allow_null=True)
    mapping_name = serializers.CharField(source="mapping.name", allow_null=True)
    mapping_enabled = serializers.BooleanField(source="mapping.enabled", allow_null=True)
    count = serializers.IntegerField()


class SentWithSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    batch_size = serializers.IntegerField()
    max_retries = serializers.IntegerField(help_text="Each retried event gets this many retries again.")


class ReasonCountSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()

    def to_representation(self, pair):
        return {"reason": pair[0], "count": pair[1]}


class PreviewSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(RetryJob.Kind.values)
    count = serializers.IntegerField(
        help_text="A retry: failed deliveries that match, what it queues again. A re-route: events the "
        "destination filtered that match."
    )
    by_mapping = MappingCountSerializer(many=True, help_text="A retry's count per mapping.")
    by_reason = ReasonCountSerializer(many=True, help_text="A re-route's count per reason.")
    would_route = serializers.IntegerField(
        allow_null=True,
        help_text="A re-route: of the `evaluated` newest matching events, how many the current "
        "configuration would send to at least one mapping.",
    )
    evaluated = serializers.IntegerField()
    skipped = serializers.IntegerField(
        source="delivered_since",
        help_text="Deliveries that failed like this and have been delivered since: not retried.",
    )
    pending_retry = serializers.IntegerField(
        help_text="Matching deliveries still waiting for retries of their own: left to them."
    )
    retention_start = serializers.DateTimeField(help_text="Events received before this are no longer kept.")
    reaches_before_retention = serializers.BooleanField()
    destination = SentWithSerializer(help_text="The configuration they will be sent with now.")


class RetryJobSerializer(serializers.ModelSerializer):
    destination = serializers.IntegerField(source="destination_id")
    created_by = serializers.CharField(source="created_by.username", default=None)
    delivered = serializers.SerializerMethodField(help_text="Of the events it queued, delivered since.")
    failed = serializers.SerializerMethodField(help_text="Of the events it queued, failed again.")
    waiting = serializers.SerializerMethodField(help_text="Of the events it queued, still to be sent.")

    class Meta:
        model = RetryJob
        fields = [
            "id", "kind", "destination", "created_by", "created_at", "filters", "state", "total", "queued",
            "skipped", "delivered", "failed", "waiting", "finished_at",
        ]  # fmt: skip

    def _progress(self, job: RetryJob) -> retries.Progress:
        cache = self.context.setdefault("progress", {})
        if job.id not in cache:
            cache[job.id] = retries.progress(job)
        return cache[job.id]

    def get_delivered(self, job) -> int:
        return self._progress(job).delivered

    def get_failed(self, job) -> int:
        return self._progress(job).failed

    def get_waiting(self, job) -> int:
        return self._progress(job).waiting


def retry_filter(destination: Destination, data: dict):
    """The filter from a JSON body (values as the query string would give them)."""
    params = {name: str(data[name]) for name in retries.FILTER_PARAMS if data.get(name) not in (None, "")}
    try:
        return retries.parse(destination, params)
    except ValueError as bad:
        raise ParseError(str(bad)) from bad


def require_owner(user, workspace) -> None:
    try:
        tenancy.require_owner(user, workspace)
    except NotOwner as refused:
        raise PermissionDenied(str(refused)) from refused


class DestinationRetriesView(APIView):
    """POST: a dry run (`dry_run: true`), or start a retry of the destination's failed deliveries that
    match; GET: its retry jobs, newest first."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=RetryRequestSerializer,
        responses={200: PreviewSerializer, 202: RetryJobSerializer},
        examples=[OpenApiExample("Dry run", {"dry_run": True, "reason": "400", "range": "24h"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        destination = get_scoped_or_404(Destination, request.user, pk=pk)
        require_owner(request.user, destination.workspace)
        body = RetryRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        match = retry_filter(destination, request.data)
        if body.validated_data["dry_run"]:
            return Response(PreviewSerializer(retries.preview(destination, match)).data)
        job = retries.start(destination, match, request.user)
        return Response(RetryJobSerializer(job).data, status=202)

    @extend_schema(responses=RetryJobSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        destination = get_scoped_or_404(Destination, request.user, pk=pk)
        jobs = destination.retry_jobs.select_related("created_by").order_by("-created_at")[:50]
        return Response(RetryJobSerializer(jobs, many=True).data)


def _job(request: Request, pk: int) -> RetryJob:
    return get_scoped_or_404(RetryJob, request.user, pk=pk)


class RetryJobView(APIView):
    @extend_schema(responses=RetryJobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RetryJobSerializer(_job(request, pk)).data)


class RetryJobCancelView(APIView):
    """Stop the job before its next chunk; the failed deliveries it had not reached stay failed."""

    @extend_schema(request=None, responses=RetryJobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        require_owner(request.user, job.workspace)
        retries.cancel(job)
        job.refresh_from_db()
        return Response(RetryJobSerializer(job).data)


urlpatterns = [
    path("destinations/<int:pk>/retries/", DestinationRetriesView.as_view(), name="api-destination-retries"),
    path("retries/<int:pk>/", RetryJobView.as_view(), name="api-retry"),
    path("retries/<int:pk>/cancel/", RetryJobCancelView.as_view(), name="api-retry-cancel"),
]
