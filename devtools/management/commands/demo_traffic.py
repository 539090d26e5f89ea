"""Send realistic demo traffic to a running Delivery Overview."""

from django.core.management.base import BaseCommand

from devtools.demo import run_traffic


class Command(BaseCommand):
    help = "Send about --rate events a second from the demo sources to --url until interrupted."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--write-key", action="append", required=True, help="name=key, once per source")
        parser.add_argument("--rate", type=float, default=40.0)

    def handle(self, *args, url: str, write_key: list[str], rate: float, **options) -> None:
        keys = dict(item.split("=", 1) for item in write_key)
        try:
            run_traffic(url, keys, rate)
        except KeyboardInterrupt:
            return
