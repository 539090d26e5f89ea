"""URL map: the tracking API, the dashboard pages, the REST API, the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("v1/", include("delivery.urls")),
    path("api/v1/", include("overview.api.urls")),
    path("api/schema/", include("overview.api.schema")),
    path("admin/", admin.site.urls),
    path("", include("overview.configure.urls")),
    path("", include("overview.pages.urls")),
]
