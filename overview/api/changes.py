"""The change log in the REST API: a source's or a destination's changes (overview.changes), newest
first; any member of its workspace reads them."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery.models import Destination, Source
from overview import changes
from overview.tenancy import get_scoped_or_404


class ChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(help_text="Who made it; empty when no user did (a command).")
    object_type = serializers.CharField(help_text="source, destination, mapping or alert rule")
    object_id = serializers.CharField()
    object_repr = serializers.CharField(help_text="Its name when the change was made.")
    action = serializers.ChoiceField(list(changes.ACTIONS.values()))
    fields = serializers.DictField(
        child=serializers.ListField(
            child=serializers.CharField(allow_blank=True), min_length=2, max_length=2
        ),
        help_text="Field -> [before, after] as recorded; secrets show as ••••••.",
    )


class ChangesView(APIView):
    model: type = Destination

    @extend_schema(responses=ChangeSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        found = get_scoped_or_404(self.model, request.user, pk=pk)
        listed = changes.for_destination(found) if self.model is Destination else changes.for_source(found)
        return Response(ChangeSerializer(listed, many=True).data)


urlpatterns = [
    path(
        "destinations/<int:pk>/changes/",
        ChangesView.as_view(model=Destination),
        name="api-destination-changes",
    ),
    path("sources/<int:pk>/changes/", ChangesView.as_view(model=Source), name="api-source-changes"),
]
