"""Dashboard pages: the workspace home, the Delivery Overview of destinations and sources, the catalogue."""
