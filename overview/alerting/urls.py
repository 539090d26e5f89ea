"""Alerting pages: the workspace's alerts, an incident, the operator's notifications."""

from django.urls import path

from overview.alerting import incidents, notifications

urlpatterns = [
    path("w/<slug:slug>/alerts/", incidents.alerts_home, name="alerts"),
    path("w/<slug:slug>/incidents/<int:incident_id>/", incidents.incident_detail, name="incident"),
    path("notifications/", notifications.notifications, name="notifications"),
    path("notifications/<int:notification_id>/", notifications.notification_open, name="notification"),
    path("notifications/read/", notifications.notifications_read, name="notifications_read"),
]
