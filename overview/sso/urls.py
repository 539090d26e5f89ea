"""Single sign-on URLs; the provider's redirect URI for this site is <SITE_URL>/oidc/callback/."""

from django.urls import path

from overview.sso import views

urlpatterns = [
    path("authenticate/", views.SignInView.as_view(), name="oidc_authentication_init"),
    path("callback/", views.CallbackView.as_view(), name="oidc_authentication_callback"),
]
