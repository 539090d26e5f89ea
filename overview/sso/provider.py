"""The OpenID Connect provider as settings name it: whether single sign-on is on, and its endpoints,
read from its discovery document once (then cached) unless a setting gives them."""

import functools
import logging

import httpx
from django.conf import settings
from mozilla_django_oidc.utils import import_from_settings

logger = logging.getLogger(__name__)

# mozilla-django-oidc's setting for each endpoint, and the discovery document's name for it.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_END_SESSION_ENDPOINT": "end_session_endpoint",
}
# What a sign-in cannot do without (the end-session endpoint is optional).
REQUIRED_ENDPOINTS = [name for name in DISCOVERED if name != "OIDC_OP_END_SESSION_ENDPOINT"]


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read, or names another issuer."""


def enabled() -> bool:
    has_provider = bool(settings.OIDC_ISSUER) or all(getattr(settings, name) for name in REQUIRED_ENDPOINTS)
    return has_provider and bool(settings.OIDC_RP_CLIENT_ID and settings.OIDC_RP_CLIENT_SECRET)


def password_login() -> bool:
    """The user name and password form is on unless turned off with single sign-on there instead."""
    return settings.PASSWORD_LOGIN or not enabled()


def same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@functools.lru_cache(maxsize=4)
def discovery(issuer: str) -> dict:
    """The provider's metadata (OpenID Connect Discovery 1.0); a failure is not cached."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        answer = httpx.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        answer.raise_for_status()
        document = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("OpenID Connect discovery at %s failed: %s", url, error)
        raise ProviderUnavailable(f"The provider's discovery document at {url} could not be read.") from error
    # The spec requires the document's issuer to be the one asked for: anything else is not our provider.
    if not same_issuer(str(document.get("issuer", "")), issuer):
        raise ProviderUnavailable(f"The discovery document at {url} names another issuer.")
    return document


def setting(name: str, *default):
    """mozilla-django-oidc's settings (its `get_settings`), each endpoint from discovery unless set."""
    if name in DISCOVERED and not getattr(settings, name, ""):
        if not settings.OIDC_ISSUER:
            return default[0] if default else None
        return discovery(settings.OIDC_ISSUER).get(DISCOVERED[name]) or (default[0] if default else None)
    return import_from_settings(name, *default)
