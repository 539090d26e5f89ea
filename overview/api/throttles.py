"""Rate limits of the REST API (DRF throttles), counted in the default cache, which is Redis: every web
process on every host adds to the same count. Rates are settings (API_RATE_LIMIT, API_TOKEN_RATE_LIMIT),
read when a request comes, not when the class is defined."""

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class ApiRateThrottle(UserRateThrottle):
    """Per caller: the token's or session's user (per IP for anonymous requests, which are refused anyway)."""

    scope = "user"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class TokenThrottle(AnonRateThrottle):
    """POST /api/v1/token/, per client IP: user name and password guesses."""

    scope = "token"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
