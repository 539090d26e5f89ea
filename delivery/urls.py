"""The tracking API, mounted at /v1/ (the paths the common analytics clients post to), with the short
paths of the browser SDK (@segment/analytics-next: /v1/t, /v1/p, /v1/i, /v1/s, /v1/g, /v1/a, /v1/b) and
its telemetry path /v1/m. RudderStack's beacon path is mounted at /beacon/v1/ (overview/urls.py)."""

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
    path("b", tracking_api.batch, name="tracking-b"),
    path("t", tracking_api.track, name="tracking-t"),
    path("i", tracking_api.identify, name="tracking-i"),
    path("p", tracking_api.page, name="tracking-p"),
    path("s", tracking_api.screen, name="tracking-s"),
    path("g", tracking_api.group, name="tracking-g"),
    path("a", tracking_api.alias, name="tracking-a"),
    path("m", tracking_api.metrics, name="tracking-metrics"),
]

beacon_urlpatterns = [path("batch", tracking_api.batch, name="tracking-beacon-batch")]
