"""Configuration pages, next to the dashboard's /w/<slug>/… pages (in the "configure" URL namespace,
which overview.urls shares with the alerting pages)."""

from django.urls import path

from overview.configure import alert_rules, views

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
    path(
        "w/<slug:slug>/destinations/<int:pk>/alerts/",
        alert_rules.destination_alerts,
        name="destination_alerts",
    ),
    path("w/<slug:slug>/sources/<int:pk>/alerts/", alert_rules.source_alerts, name="source_alerts"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/", alert_rules.rule_edit, name="rule"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/mute/", alert_rules.rule_mute, name="rule_mute"),
    path("w/<slug:slug>/alerts/rules/<int:rule_id>/delete/", alert_rules.rule_delete, name="rule_delete"),
    path("account/api-token/", views.api_token, name="api_token"),
]
