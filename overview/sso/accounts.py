"""The account a sign-in at the provider lands on: found by the provider's issuer and `sub` (never by
email: see SingleSignOnIdentity), made at the first sign-in, and brought up to date at every one —
name, email, staff flag and memberships as the claims say."""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from overview.models import SingleSignOnIdentity
from overview.sso import memberships

# Characters Django's user names allow; anything else in a provider's name is dropped.
NOT_IN_USERNAMES = re.compile(r"[^\w.@+-]")


def unique_username(claims: dict) -> str:
    """preferred_username, else the email, made a valid user name no other account has."""
    wanted = str(claims.get("preferred_username") or claims.get("email") or "")
    base = NOT_IN_USERNAMES.sub("", wanted)[:140] or "sso-user"
    User = get_user_model()
    username, n = base, 1
    while User.objects.filter(username__iexact=username).exists():
        n += 1
        username = f"{base}-{n}"
    return username


@transaction.atomic
def sign_in(issuer: str, claims: dict):
    """The user for these claims (ID token and userinfo), created if new, updated to what they say."""
    identity = (
        SingleSignOnIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=claims["sub"])
        .first()
    )
    if identity:
        user = identity.user
    else:
        # A new account, with no password: it signs in at the provider only.
        user = get_user_model().objects.create_user(unique_username(claims))
        SingleSignOnIdentity.objects.create(user=user, issuer=issuer, subject=claims["sub"])
    user.email = str(claims.get("email") or "")
    user.first_name = str(claims.get("given_name") or "")[:150]
    user.last_name = str(claims.get("family_name") or "")[:150]
    groups = memberships.groups_of(claims)
    if settings.OIDC_STAFF_GROUP:
        user.is_staff = settings.OIDC_STAFF_GROUP in groups
    user.save()
    memberships.set_memberships(user, memberships.roles_from(groups))
    return user
