"""A real OpenID Connect provider for the single sign-on tests: oidc-provider-mock (authlib under Flask)
on a free local port, issuing RS256-signed ID tokens by the authorization-code flow, and a client that
walks the flow as a browser would (following our redirects, posting the provider's consent form)."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from oidc_provider_mock import run_server_in_thread

CLIENT_ID = "delivery-overview"
CLIENT_SECRET = "s3cret-never-logged-5e1f"


@dataclass
class Provider:
    url: str  # its issuer

    def set_user(self, sub: str, **claims) -> None:
        """What the provider says about `sub` at its next sign-in (ID token and userinfo)."""
        httpx.put(f"{self.url}/users/{sub}", json=claims).raise_for_status()


@contextmanager
def running_provider() -> Iterator[Provider]:
    with run_server_in_thread(require_nonce=True) as server:
        yield Provider(f"http://localhost:{server.server_port}")


def sso_settings(provider: Provider) -> dict[str, object]:
    """The settings the environment gives in production (overview/settings.py), for `settings`."""
    return {
        "OIDC_ISSUER": provider.url,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_PROVIDER_NAME": "Acme ID",
    }


def sign_in(client: httpx.Client, site: str, provider: Provider, sub: str) -> httpx.Response:
    """Click "Sign in with …", consent as `sub` at the provider, come back: the callback's answer."""
    start = client.get(f"{site}/oidc/authenticate/")
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{provider.url}/oauth2/authorize?"), authorize
    consented = client.post(authorize, data={"sub": sub})
    assert consented.status_code == 302, consented.text
    callback = consented.headers["location"]
    assert callback.startswith(f"{site}/oidc/callback/?code="), callback
    return client.get(callback)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
