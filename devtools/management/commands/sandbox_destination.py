"""Run the sandbox destination (devtools.sandbox) in the foreground for the demo and local testing."""

import logging

from django.core.management.base import BaseCommand, CommandError

from devtools.sandbox import serve_forever


class Command(BaseCommand):
    help = "Serve the sandbox destination (webhook and Customer.io dialects) until SIGINT or SIGTERM."
    requires_system_checks: list[str] = []  # a stand-alone HTTP server; needs no database or apps

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")

    def handle(self, *args, host: str, port: int, verbosity: int, **options) -> None:
        if verbosity >= 2:
            logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
        try:
            serve_forever(host, port, on_ready=self._announce)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc

    def _announce(self, url: str) -> None:
        self.stdout.write(f"Sandbox destination listening on {url}")
        self.stdout.flush()
