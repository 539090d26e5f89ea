"""URL map: the tracking API, the dashboard pages, the REST API, the admin."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
