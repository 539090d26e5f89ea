"""Pages to configure sources, destinations, mappings and alerts (being written)."""
