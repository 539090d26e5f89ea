"""/api/v1/: configuration endpoints and figure endpoints, plus the OpenAPI schema."""

from django.urls import include, path

urlpatterns = [
    path("", include("overview.api.figures")),
    path("", include("overview.api.config")),
    path("", include("overview.api.events")),
    path("", include("overview.api.retries")),
    path("", include("overview.api.changes")),
]
