"""What every page's layout needs: the operator's workspaces (for the switcher), the current one, the
operator's time zone, and rendering in that zone. `navigation` is a template context processor
("overview.pages.navigation.navigation") so pages of other apps that extend base.html get the same header."""

import datetime as dt
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from delivery.models import Workspace
from overview import windows
from overview.tenancy import sees_system, workspaces_for

ZONE_COOKIE = "tz"


def operator_zone(request: HttpRequest) -> dt.tzinfo:
    """The zone named in the URL (a shared custom range), else the one the browser reported, else UTC."""
    cookie = unquote(request.COOKIES.get(ZONE_COOKIE, ""))
    return windows.zone(request.GET.get("tz")) or windows.zone(cookie) or dt.UTC


def render_page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """Render with times in the operator's zone, as every page of the site does."""
    with timezone.override(operator_zone(request)):
        return render(request, template, context, status=status)


def zone_name(zone: dt.tzinfo) -> str:
    return getattr(zone, "key", "UTC")


def navigation(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    workspaces = list(workspaces_for(request.user))
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match else None
    # Pages of the operator rather than of a workspace (notifications, tokens) keep the first one's links.
    current: Workspace | None = next(
        (w for w in workspaces if w.slug == slug), workspaces[0] if workspaces else None
    )
    return {
        "nav_system": sees_system(request.user),
        "nav_workspaces": workspaces,
        "nav_workspace": current,
        "nav_zone": zone_name(operator_zone(request)),
    }
