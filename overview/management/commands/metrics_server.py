"""`manage.py metrics_server --port 9101`: the counters and histograms of this host's processes, for a
Prometheus scrape on a host that runs only workers (a web server's /metrics covers its own host)."""

import time

from django.core.management.base import BaseCommand
from prometheus_client import CollectorRegistry, multiprocess, start_http_server


class Command(BaseCommand):
    help = "Serve this host's worker metrics (PROMETHEUS_MULTIPROC_DIR) for Prometheus."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=9101)

    def handle(self, *args, host: str, port: int, **options) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, addr=host, registry=registry)
        self.stdout.write(f"metrics of this host's processes at http://{host}:{port}/metrics")
        while True:
            time.sleep(3600)
