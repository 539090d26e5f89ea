"""The Content-Security-Policy in headless Chromium: every page (login, overviews with their Plotly
charts, configuration pages, the API docs) works under it and the browser reports no violation."""

import re

import pytest
from django.utils import timezone

from tests.browser import PASSWORD, open_page, shot
from tests.overview.story import make_story, record

pytestmark = pytest.mark.browser

# Collects violations as the browser reports them, before any page script runs.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = e.sourceFile + ":" + e.lineNumber;
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + where);
});
"""


@pytest.fixture
def page(chromium):
    with open_page(chromium, viewport={"width": 1366, "height": 768}) as page:
        page.add_init_script(LISTEN)
        console = []
        page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
        page.csp_console = console
        yield page


def violations(page) -> list[str]:
    return [*page.evaluate("window.__csp"), *page.csp_console]


REDOC_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg :0"


def visit(page, url: str, ready: str, name: str, expected: tuple[str, ...] = ()) -> None:
    response = page.goto(url)
    assert response.status == 200, url
    policy = response.headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    )
    page.wait_for_selector(ready)
    shot(page, name, full_page=False)
    assert [v for v in page.evaluate("window.__csp") if v not in expected] == [], url
    assert [v for v in page.csp_console if not any(e.split()[1] in v for e in expected)] == [], url


def test_pages_charts_and_api_docs_work_under_the_policy(page, live_server, transactional_db):
    story = make_story()
    record(story, timezone.now())
    base, slug = live_server.url, story.workspace.slug

    visit(page, f"{base}/login/", "#id_username", "csp-00-login")
    page.fill("#id_username", story.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/[^/]+/$"))
    assert violations(page) == []

    visit(
        page,
        f"{base}/w/{slug}/destinations/{story.destination.id}/",
        "#chart[data-ready=true]",
        "csp-01-overview",
    )
    assert page.locator("#chart .main-svg").count() > 0  # Plotly drew the chart
    visit(page, f"{base}/w/{slug}/sources/{story.web.id}/", "#chart[data-ready=true]", "csp-02-source")
    visit(page, f"{base}/w/{slug}/settings/", "h1", "csp-03-settings")
    visit(page, f"{base}/w/{slug}/settings/sources/{story.web.id}/", "[data-snippet]", "csp-04-source-form")
    page.locator("[data-snippet]").nth(1).click()  # the snippet tabs are configure.js, a static file
    assert page.locator("[data-snippet]").nth(1).get_attribute("aria-selected") == "true"
    visit(
        page, f"{base}/w/{slug}/settings/destinations/{story.destination.id}/", "form", "csp-05-destination"
    )
    visit(page, f"{base}/account/api-token/", "h1", "csp-06-api-token")

    visit(page, f"{base}/api/schema/docs/", ".swagger-ui .opblock", "csp-07-swagger-ui")
    assert page.locator(".swagger-ui .opblock").count() > 20
    # ReDoc's attribution logo is on a CDN: blocked, as everything from outside this site is, and hidden.
    visit(
        page,
        f"{base}/api/schema/redoc/",
        "text=Delivery Overview API",
        "csp-08-redoc",
        expected=(REDOC_LOGO,),
    )
    assert page.locator("h1").first.inner_text().startswith("Delivery Overview API")
