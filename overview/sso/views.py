"""The login page (the provider's button, and the password form unless it is off), the start and the
callback of a sign-in at the provider, logout (at the provider too when it offers it), and the admin's
login, which follows the same rules."""

import logging
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from mozilla_django_oidc import views as oidc_views

from overview.sso import provider

logger = logging.getLogger(__name__)

PASSWORD_LOGIN_OFF = "Logging in with a password is turned off on this site: sign in with {name}."
SIGN_IN_FAILED = "Signing in with {name} did not work. Please try again, or ask an administrator."
PROVIDER_UNREACHABLE = "{name} cannot be reached just now. Please try again in a minute."


def _say(template: str) -> str:
    return template.format(name=settings.OIDC_PROVIDER_NAME)


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            sso_enabled=provider.enabled(),
            sso_name=settings.OIDC_PROVIDER_NAME,
            password_login=provider.password_login(),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not provider.password_login():
            messages.error(request, _say(PASSWORD_LOGIN_OFF))
            response = self.get(request, *args, **kwargs)
            response.status_code = 403
            return response
        return super().post(request, *args, **kwargs)


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login form, or, with password login off, the login page (then back to the admin)."""
    if provider.password_login():
        return admin.site.login(request)
    return redirect(f"{reverse('login')}?{urlencode({'next': request.GET.get('next') or '/admin/'})}")


class SignInView(oidc_views.OIDCAuthenticationRequestView):
    """Off to the provider, with a fresh state and nonce kept in the session (mozilla-django-oidc)."""

    get_settings = staticmethod(provider.setting)

    def __init__(self, **kwargs) -> None:
        View.__init__(self, **kwargs)  # the endpoints are read in get(), where a failure can be answered

    def get(self, request):
        if not provider.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except provider.ProviderUnavailable:
            messages.error(request, _say(PROVIDER_UNREACHABLE))
            return redirect("login")
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        return super().get(request)


class CallbackView(oidc_views.OIDCAuthenticationCallbackView):
    """Back from the provider: state, nonce and ID token checked, the user logged in (or told why not)."""

    get_settings = staticmethod(provider.setting)

    def get(self, request):
        if not provider.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except (provider.ProviderUnavailable, requests.RequestException) as error:
            # The exception's text names the provider's URL and answer, never the client secret.
            logger.warning("Single sign-on: the provider's token or userinfo call failed: %s", error)
            return self.login_failure()

    def login_failure(self):
        messages.error(self.request, _say(SIGN_IN_FAILED))
        return redirect("login")


class LogoutView(auth_views.LogoutView):
    """Django's logout; after a sign-in at a provider that offers it, its logout as well."""

    def post(self, request, *args, **kwargs):
        at_provider = provider_logout_url(request)  # before the session, and its ID token, are gone
        response = super().post(request, *args, **kwargs)
        return redirect(at_provider) if at_provider else response


def provider_logout_url(request: HttpRequest) -> str:
    """OpenID Connect RP-Initiated Logout: the provider's end-session URL, back to our login page."""
    id_token = request.session.get("oidc_id_token")
    if not id_token or not provider.enabled():
        return ""
    try:
        endpoint = provider.setting("OIDC_OP_END_SESSION_ENDPOINT", "")
    except provider.ProviderUnavailable:
        return ""  # logged out here all the same
    if not endpoint:
        return ""
    query = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return f"{endpoint}?{urlencode(query)}"
