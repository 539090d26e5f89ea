"""Tools around the product: the sandbox destination, the embedded PostgreSQL and Redis, the demo.

Settings use `embedded` for the default servers; the pipeline and the pages never import this package."""
