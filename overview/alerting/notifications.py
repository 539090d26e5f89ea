"""The operator's in-app notifications: the list, opening one (marks it read, goes to its incident),
marking all read, and the unread count in every page's header (the template context processor
"overview.alerting.notifications.unread")."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from overview import tenancy
from overview.models import Notification
from overview.pages.navigation import render_page

SHOWN = 100


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def unread(request: HttpRequest) -> dict:
    return {"nav_unread": unread_count(getattr(request, "user", None))}


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    mine = Notification.objects.filter(
        user=request.user, workspace__in=tenancy.workspaces_for(request.user)
    ).select_related("workspace", "incident")
    return render_page(request, "configure/notifications.html", {"notifications": mine[:SHOWN]})


@login_required
def notification_open(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one read and go to its incident."""
    notification = get_object_or_404(Notification, user=request.user, pk=notification_id)
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    if notification.incident_id:
        return redirect("configure:incident", notification.workspace.slug, notification.incident_id)
    return redirect("configure:notifications")


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    Notification.objects.filter(user=request.user, read_at__isnull=True).update(read_at=timezone.now())
    return redirect("configure:notifications")
