"""/api/v1/ configuration endpoints: workspaces, sources, destinations and their mappings, alert rules,
incidents, and a token for scripts. Every viewset is scoped to the caller's workspaces (permissions.py)."""

from django.core.exceptions import PermissionDenied as NotAllowed
from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from delivery.models import Destination, Mapping, Source, Workspace
from overview import alerts, tenancy
from overview.api import serializers, tokens
from overview.api.parsers import JSONParser
from overview.api.permissions import WorkspaceScopedMixin
from overview.api.throttles import TokenThrottle
from overview.models import AlertRule, Incident
from overview.sso import provider

WRITE_METHODS = ["get", "post", "patch", "delete", "head", "options"]


class WorkspaceViewSet(WorkspaceScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Workspaces you belong to. Creating one makes you its owner."""

    scope_model = Workspace
    serializer_class = serializers.WorkspaceSerializer
    lookup_value_regex = r"\d+"

    def perform_create(self, serializer) -> None:
        try:
            workspace = tenancy.create_workspace(serializer.validated_data["name"], self.request.user)
        except NotAllowed as refused:
            raise PermissionDenied(str(refused)) from refused  # DRF would answer with its generic text
        serializer.instance = workspace


class ConfigViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    """List, create, read, change (PATCH) and delete; creation needs the owner role in the workspace."""

    http_method_names = WRITE_METHODS
    lookup_value_regex = r"\d+"

    def perform_create(self, serializer) -> None:
        self.require_owner(serializer.validated_data["workspace"])
        serializer.save()


class SourceViewSet(ConfigViewSet):
    """Sources: where events come from. `write_key` is what analytics clients send (read-only)."""

    scope_model = Source
    serializer_class = serializers.SourceSerializer


class DestinationViewSet(ConfigViewSet):
    """Destinations: where events go. `credentials` are write-only and never returned."""

    scope_model = Destination
    serializer_class = serializers.DestinationSerializer

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().prefetch_related("sources")


class MappingViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    """A destination's mappings: which events it sends (trigger) and how (fields)."""

    scope_model = Mapping
    serializer_class = serializers.MappingSerializer
    http_method_names = WRITE_METHODS
    lookup_url_kwarg = "mapping_id"

    def destination(self) -> Destination:
        if not hasattr(self, "_destination"):
            self._destination = tenancy.get_scoped_or_404(
                Destination, self.request.user, pk=self.kwargs["destination_id"]
            )
        return self._destination

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return Mapping.objects.none()
        return Mapping.objects.filter(destination=self.destination()).order_by("id")

    def workspace_of(self, obj: Mapping) -> Workspace:
        return self.destination().workspace

    def perform_create(self, serializer) -> None:
        self.require_owner(self.destination().workspace)
        serializer.save(destination=self.destination())


class AlertRuleViewSet(ConfigViewSet):
    """Alert rules on a destination's delivery success rate or a source's volume."""

    scope_model = AlertRule
    serializer_class = serializers.AlertRuleSerializer

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().select_related("destination", "source")

    def perform_create(self, serializer) -> None:
        self.require_owner(serializer.validated_data["workspace"])
        serializer.save(created_by=self.request.user)

    def perform_destroy(self, rule: AlertRule) -> None:
        alerts.delete_rule(rule)


class IncidentPagination(PageNumberPagination):
    page_size = 50


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Incident.Status.values),
            OpenApiParameter("rule", int),
            OpenApiParameter("destination", int),
            OpenApiParameter("source", int),
        ]
    )
)
class IncidentViewSet(WorkspaceScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents opened by alert rules, newest first, each with its timeline and notifications."""

    scope_model = Incident
    serializer_class = serializers.IncidentSerializer
    pagination_class = IncidentPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet:
        incidents = tenancy.scoped(Incident, self.request.user).order_by("-opened_at", "-id")
        incidents = incidents.select_related("workspace", "destination", "source")
        incidents = incidents.prefetch_related("events__deliveries")
        if self.action != "list":
            return incidents
        query = serializers.IncidentFilterSerializer(data=self.request.query_params)
        if not query.is_valid():
            raise ValidationError(query.errors)
        wanted = {f"{key}_id" if key != "status" else key: v for key, v in query.validated_data.items()}
        return incidents.filter(**wanted)


class TokenView(APIView):
    """A new API token for a user name and password; it replaces your previous one. The key is in this
    answer only (we keep just its hash), as on the UI's API token page."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [TokenThrottle]
    parser_classes = [FormParser, MultiPartParser, JSONParser]
    serializer_class = AuthTokenSerializer

    def post(self, request) -> Response:
        if not provider.password_login():
            # A password exchanged for a token would be a password login; the UI's API token page works.
            raise PermissionDenied(
                "Password login is turned off on this site: create a token on the API token page."
            )
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        return Response({"token": tokens.issue(serializer.validated_data["user"])})


router = DefaultRouter()
router.include_format_suffixes = False
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("sources", SourceViewSet, basename="source")
router.register("destinations", DestinationViewSet, basename="destination")
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")
router.register("incidents", IncidentViewSet, basename="incident")

mappings = MappingViewSet.as_view({"get": "list", "post": "create"})
mapping = MappingViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

urlpatterns = [
    path("destinations/<int:destination_id>/mappings/", mappings, name="mapping-list"),
    path("destinations/<int:destination_id>/mappings/<int:mapping_id>/", mapping, name="mapping-detail"),
    path("token/", TokenView.as_view(), name="api-token"),
    *router.urls,
]
