"""The authentication backend that completes a sign-in at the provider: mozilla-django-oidc exchanges
the code, checks the ID token's RS256 signature against the provider's JWKS and its nonce; this adds
the checks of its issuer and audience, and hands the claims to accounts.sign_in."""

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from overview.sso import accounts, provider


class SingleSignOnBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(provider.setting)

    def __init__(self, *args, **kwargs) -> None:
        # Django makes a backend for every login attempt and, for a user signed in with it, for every
        # request: the provider's endpoints are read only when a sign-in is being completed.
        self.UserModel = get_user_model()

    def authenticate(self, request, nonce=None, code_verifier=None, **credentials):
        if credentials or request is None or not provider.enabled():
            return None  # a user name and password, for the password backend
        super().__init__()
        return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)

    def retrieve_matching_jwk(self, token):
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        # OpenID Connect Core 10.1: a provider with one signing key may leave the key id out of the
        # token's header (oidc-provider-mock does); with several keys it must name one.
        answer = requests.get(
            self.OIDC_OP_JWKS_ENDPOINT, verify=settings.OIDC_VERIFY_SSL, timeout=settings.OIDC_TIMEOUT
        )
        answer.raise_for_status()
        keys = [key for key in answer.json().get("keys", []) if key.get("use", "sig") == "sig"]
        if len(keys) != 1:
            raise SuspiciousOperation("The ID token names no key, and the provider has several.")
        return jwt.PyJWK(keys[0], algorithm=settings.OIDC_RP_SIGN_ALGO)

    def get_or_create_user(self, access_token, id_token, payload):
        issuer = str(payload.get("iss", ""))
        if settings.OIDC_ISSUER and not provider.same_issuer(issuer, settings.OIDC_ISSUER):
            raise SuspiciousOperation("The ID token is from another issuer.")
        audience = payload.get("aud")
        if settings.OIDC_RP_CLIENT_ID not in (audience if isinstance(audience, list) else [audience]):
            raise SuspiciousOperation("The ID token is for another client.")
        user_info = self.get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: a userinfo answer about another subject must not be used.
        if user_info.get("sub") != payload.get("sub") or not payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about another subject than the ID token.")
        return accounts.sign_in(issuer, {**payload, **user_info})
