"""/api/schema/: the OpenAPI schema of the REST API, and its browsable docs (Swagger UI, ReDoc) served
from our own static files (drf-spectacular-sidecar), never a CDN, under the site's Content-Security-Policy:
Swagger UI's start-up script is a separate request (the split view), and ReDoc alone may inject styles.
The schema's own settings are SPECTACULAR_SETTINGS, so that `check --deploy` generates the same schema."""

from csp.decorators import csp_replace
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.html import format_html
from drf_spectacular.renderers import OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView


def closed_request_bodies(result: dict, generator, request, public) -> dict:
    """The API rejects unknown fields (400), so request bodies say so: additionalProperties false."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


class ReadableSchemaRenderer(OpenApiYamlRenderer):
    """A browser (asking for HTML) gets the schema as a page it shows, not a file it downloads; API
    clients asking for JSON, YAML or anything (*/*) get the schema as before."""

    media_type = "text/html"
    format = "html"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        schema = super().render(data, accepted_media_type, renderer_context).decode()
        page = format_html(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Delivery Overview API schema'
            '</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="{}"></head><body class="schema-page"><p>The OpenAPI schema of the'
            ' REST API. Read it as <a href="{}">documentation</a> or <a href="{}">ReDoc</a>; download it as'
            ' <a href="?format=json">JSON</a> or <a href="?format=yaml">YAML</a>.</p>'
            "<pre>{}</pre></body></html>",
            static("css/api-docs.css"),
            reverse("api-docs"),
            reverse("api-redoc"),
            schema,
        )
        return page.encode()


class SchemaView(SpectacularAPIView):
    renderer_classes = [*SpectacularAPIView.renderer_classes, ReadableSchemaRenderer]


redoc = SpectacularRedocView.as_view(url_name="schema")

urlpatterns = [
    path("", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # ReDoc's styled-components write <style> elements at run time. Its attribution logo, from
    # cdn.redoc.ly, stays blocked by img-src (this site loads nothing from a CDN); ReDoc then hides it.
    path("redoc/", csp_replace({"style-src": ["'self'", "'unsafe-inline'"]})(redoc), name="api-redoc"),
]
