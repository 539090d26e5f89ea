"""The answer to a locked-out login (django-axes calls it): a page that says what happened and for how
long, with status 429, rather than the login form again."""

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def locked_out(request: HttpRequest, original_response, credentials: dict | None) -> HttpResponse:
    cool_off = get_cool_off(request)
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "username": get_client_username(request, credentials) or "",
        "minutes": round(cool_off.total_seconds() / 60) if cool_off else 0,
    }
    return render(request, "registration/locked_out.html", context, status=429)
