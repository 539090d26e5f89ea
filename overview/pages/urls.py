"""Dashboard URLs: login/logout, the workspace home, the overviews, the discard catalogue."""

from django.urls import path

from overview.pages import changes, events, retries, system, views
from overview.sso import views as sso_views

urlpatterns = [
    # Django's login and logout, with single sign-on's button and provider logout (overview/sso).
    path("login/", sso_views.LoginView.as_view(), name="login"),
    path("logout/", sso_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("system/", system.system, name="system"),
    path("w/<slug:slug>/", views.workspace, name="workspace"),
    path("w/<slug:slug>/destinations/<int:pk>/", views.destination_overview, name="destination_overview"),
    path("w/<slug:slug>/sources/<int:pk>/", views.source_overview, name="source_overview"),
    path("w/<slug:slug>/catalogue/", views.catalogue, name="catalogue"),
    path("w/<slug:slug>/refused/", views.refused_requests, name="refused_requests"),
    path("w/<slug:slug>/events/", events.lookup, name="event_lookup"),
    path("w/<slug:slug>/events/<int:pk>/", events.trace, name="event_trace"),
    path("w/<slug:slug>/events/rejected/<int:pk>/", events.rejected_trace, name="rejected_trace"),
    path("w/<slug:slug>/requests/<int:pk>/", events.batch_request, name="batch_request"),
    path("w/<slug:slug>/destinations/<int:pk>/retry/", retries.retry_preview, name="retry_preview"),
    path("w/<slug:slug>/retries/<int:pk>/", retries.retry_job, name="retry_job"),
    path(
        "w/<slug:slug>/destinations/<int:pk>/changes/",
        changes.destination_changes,
        name="destination_changes",
    ),
    path("w/<slug:slug>/sources/<int:pk>/changes/", changes.source_changes, name="source_changes"),
    path(
        "w/<slug:slug>/destinations/<int:pk>/undelivered/", events.undelivered, name="destination_undelivered"
    ),
]
