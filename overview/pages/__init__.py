"""Dashboard pages (being written)."""
