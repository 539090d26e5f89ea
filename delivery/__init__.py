"""The pipeline: ingestion, routing, delivery, and the outcomes and rollups they record."""
