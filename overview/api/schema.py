"""/api/schema/: the OpenAPI schema of the REST API, and its browsable docs (Swagger UI, ReDoc) served
from our own static files (drf-spectacular-sidecar), never a CDN, under the site's Content-Security-Policy:
Swagger UI's start-up script is a separate request (the split view), and ReDoc alone may inject styles.
The schema's own settings are SPECTACULAR_SETTINGS, so that `check --deploy` generates the same schema."""

from csp.decorators import csp_replace
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView


def closed_request_bodies(result: dict, generator, request, public) -> dict:
    """The API rejects unknown fields (400), so request bodies say so: additionalProperties false."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


redoc = SpectacularRedocView.as_view(url_name="schema")

urlpatterns = [
    path("", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # ReDoc's styled-components write <style> elements at run time. Its attribution logo, from
    # cdn.redoc.ly, stays blocked by img-src (this site loads nothing from a CDN); ReDoc then hides it.
    path("redoc/", csp_replace({"style-src": ["'self'", "'unsafe-inline'"]})(redoc), name="api-redoc"),
]
