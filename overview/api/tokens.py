"""REST API tokens, stored hashed: a key is made, shown once and forgotten; the table keeps its SHA-256
digest, and `Authorization: Token <key>` is checked by hashing the presented key and looking that up.
Keys are 40 random hex characters (as DRF's were), so a plain SHA-256 is enough: no key to guess."""

import hashlib
import secrets

from django.db import transaction
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from overview.models import ApiToken


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def issue(user) -> str:
    """A new key for `user`, replacing any token they had; the caller shows it once."""
    key = secrets.token_hex(20)
    ApiToken.objects.filter(user=user).delete()
    ApiToken.objects.create(user=user, digest=digest(key), prefix=key[:4])
    return key


def revoke(user) -> None:
    ApiToken.objects.filter(user=user).delete()


def token_of(user) -> ApiToken | None:
    return ApiToken.objects.filter(user=user).first()


class HashedTokenAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <key>`, against the digests."""

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.select_related("user").filter(digest=digest(key)).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token
