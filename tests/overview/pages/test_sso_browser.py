"""An operator in headless Chromium signs in with single sign-on: the login page's button, the
provider's consent page (oidc-provider-mock, a real provider on a local port), and back on the
dashboard of the workspace its groups give. Screenshots of the login page and the landing."""

import re

import pytest

from delivery.models import Workspace
from overview.sso import provider as sso_provider
from tests.browser import open_page, shot
from tests.overview.sso_provider import running_provider, sso_settings

pytestmark = pytest.mark.browser


@pytest.fixture
def sso(settings):
    with running_provider() as provider:
        for name, value in sso_settings(provider).items():
            setattr(settings, name, value)
        settings.PASSWORD_LOGIN = False
        yield provider
    sso_provider.discovery.cache_clear()


def test_an_operator_signs_in_with_the_provider_and_lands_on_its_workspace(
    chromium, sso, live_server, transactional_db
):
    Workspace.objects.create(name="Globex", slug="globex")
    sso.set_user(
        "u-1001", email="olivia@acme.test", preferred_username="olivia", groups=["delivery:globex:viewer"]
    )
    with open_page(chromium, viewport={"width": 1366, "height": 768}) as page:
        # The provider's consent page is not ours: its stylesheet from a CDN is refused, not reported.
        page.route(re.compile(r"^https://cdn\.jsdelivr\.net/"), lambda route: route.abort())
        page.goto(f"{live_server.url}/login/")
        assert page.locator("input[name=password]").count() == 0
        shot(page, "sso-01-login", full_page=False)

        page.get_by_role("link", name="Sign in with Acme ID").click()
        page.wait_for_url(re.compile(r"/oauth2/authorize\?"))
        page.fill("input[name=sub]", "u-1001")
        page.get_by_role("button", name="Authorize").click()

        page.wait_for_url(f"{live_server.url}/w/globex/")
        assert page.locator(".who").inner_text() == "olivia"
        shot(page, "sso-02-landed", full_page=False)
