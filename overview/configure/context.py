"""The unread in-app notification count for the page header (also usable as a context processor:
"overview.configure.context.notifications")."""

from django.http import HttpRequest

from overview.models import Notification


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notifications(request: HttpRequest) -> dict:
    return {"nav_unread": unread_count(getattr(request, "user", None))}
