"""The tracking API, mounted at /v1/ (the paths the common analytics clients post to)."""

from django.urls import path

from delivery import views

urlpatterns = [
    path("batch", views.batch, name="tracking-batch"),
    path("import", views.batch, name="tracking-import"),
    path("track", views.track, name="tracking-track"),
    path("identify", views.identify, name="tracking-identify"),
    path("page", views.page, name="tracking-page"),
    path("screen", views.screen, name="tracking-screen"),
    path("group", views.group, name="tracking-group"),
    path("alias", views.alias, name="tracking-alias"),
]
