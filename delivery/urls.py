"""The tracking API, mounted at /v1/ (the paths the common analytics clients post to)."""

from django.urls import path

from delivery import tracking_api

urlpatterns = [
    path("batch", tracking_api.batch, name="tracking-batch"),
    path("import", tracking_api.batch, name="tracking-import"),
    path("track", tracking_api.track, name="tracking-track"),
    path("identify", tracking_api.identify, name="tracking-identify"),
    path("page", tracking_api.page, name="tracking-page"),
    path("screen", tracking_api.screen, name="tracking-screen"),
    path("group", tracking_api.group, name="tracking-group"),
    path("alias", tracking_api.alias, name="tracking-alias"),
]
