"""Single sign-on with an OpenID Connect provider (mozilla-django-oidc does the protocol): the provider's
endpoints (provider.py), the account a sign-in lands on (accounts.py), its workspaces from the groups
claim (memberships.py), and the login, logout and callback views (views.py)."""
