"""Configuration and alert pages, next to the dashboard's /w/<slug>/… pages."""

from django.urls import path

from overview.configure import alert_views, views

app_name = "configure"

urlpatterns = [
    path("w/<slug:slug>/settings/", views.settings_home, name="settings"),
    path("w/<slug:slug>/settings/sources/new/", views.source_new, name="source_new"),
    path("w/<slug:slug>/settings/sources/<int:pk>/", views.source_edit, name="source"),
    path("w/<slug:slug>/settings/sources/<int:pk>/delete/", views.source_delete, name="source_delete"),
    path("w/<slug:slug>/settings/destinations/new/", views.destination_new, name="destination_new"),
    path("w/<slug:slug>/settings/destinations/<int:pk>/", views.destination_edit, name="destination"),
    path(
        "w/<slug:slug>/settings/destinations/<int:pk>/delete/",
        views.destination_delete,
        name="destination_delete",
    ),
    path(
        "w/<slug:slug>/settings/destinations/<int:pk>/mappings/new/", views.mapping_edit, name="mapping_new"
    ),
    path(
        "w/<slug:slug>/settings/destinations/<int:pk>/mappings/<int:mid>/", views.mapping_edit, name="mapping"
    ),
    path(
        "w/<slug:slug>/settings/destinations/<int:pk>/mappings/<int:mid>/delete/",
        views.mapping_delete,
        name="mapping_delete",
    ),
    path("w/<slug:slug>/alerts/", alert_views.alerts_home, name="alerts"),
    path(
        "w/<slug:slug>/destinations/<int:pk>/alerts/",
        alert_views.destination_alerts,
        name="destination_alerts",
    ),
    path("w/<slug:slug>/sources/<int:pk>/alerts/", alert_views.source_alerts, name="source_alerts"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/", alert_views.rule_edit, name="rule"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/mute/", alert_views.rule_mute, name="rule_mute"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/delete/", alert_views.rule_delete, name="rule_delete"),
    path("w/<slug:slug>/incidents/<int:incident_id>/", alert_views.incident_detail, name="incident"),
    path("notifications/", alert_views.notifications, name="notifications"),
    path("notifications/<int:notification_id>/", alert_views.notification_open, name="notification"),
    path("notifications/read/", alert_views.notifications_read, name="notifications_read"),
    path("account/api-token/", views.api_token, name="api_token"),
]
