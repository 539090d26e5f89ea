"""The REST API under /api/v1/: configuration (config.py) and figures (figures.py)."""
