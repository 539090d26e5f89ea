"""The tracking API (being written)."""

urlpatterns: list = []
