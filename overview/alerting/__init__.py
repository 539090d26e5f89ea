"""Pages of what alert rules found: the workspace's alerts and incidents, an incident's timeline, and
the operator's in-app notifications (the rules themselves are configured in overview.configure)."""
