"""URL map: the tracking API, the dashboard pages, the REST API, single sign-on, the admin."""

from django.contrib import admin
from django.urls import include, path

from delivery.urls import beacon_urlpatterns
from overview import ops
from overview.alerting import urls as alerting_urls
from overview.configure import urls as configure_urls
from overview.sso import views as sso_views

# Configuration and alerting pages keep one URL namespace, "configure", that templates and links use.
configure_and_alerting = ([*configure_urls.urlpatterns, *alerting_urls.urlpatterns], "configure")

urlpatterns = [
    path("v1/", include("delivery.urls")),
    path("beacon/v1/", include(beacon_urlpatterns)),
    path("api/v1/", include("overview.api.urls")),
    path("api/schema/", include("overview.api.schema")),
    path("oidc/", include("overview.sso.urls")),
    # Before the admin's own: with password login off, the admin's form is not offered either.
    path("admin/login/", sso_views.admin_login),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("", include(configure_and_alerting)),
    path("", include("overview.pages.urls")),
]
