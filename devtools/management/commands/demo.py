"""Run the whole product on this machine with live demo traffic; Ctrl-C stops everything."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devtools import demo, embedded
from devtools.supervise import SupervisedWorker, default_node, spawn, stop


def web_command(host: str, port: int) -> list[str]:
    """The web server as the demo runs it; gunicorn.conf.py (shared with docker-compose) sets the rest."""
    config = settings.BASE_DIR / "gunicorn.conf.py"
    return [sys.executable, "-m", "gunicorn", "-c", str(config), "-b", f"{host}:{port}"]


class Command(BaseCommand):
    help = "Start the database, broker, sandbox destination, worker, web server and demo traffic."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--sandbox-port", type=int, default=8765)
        parser.add_argument("--rate", type=float, default=40.0, help="demo events per second")
        parser.add_argument("--no-traffic", action="store_true", help="start everything but the traffic")

    def handle(self, *args, host, port, sandbox_port, rate, no_traffic, **options) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.worker: SupervisedWorker | None = None
        embedded_redis = not os.environ.get("CELERY_BROKER_URL")
        if embedded_redis:
            embedded.acquire_redis(settings.DATA_DIR)
        # Ctrl-C and SIGTERM both stop everything (SIGINT is restored: a background start ignores it).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self._run(host, port, sandbox_port, rate, no_traffic)
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("\nStopping…")
            self._stop_children()
            if embedded_redis:
                embedded.release_redis(settings.DATA_DIR)
            self.stdout.write("Stopped.")

    def _run(self, host, port, sandbox_port, rate, no_traffic) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        # A fresh demo counts from zero: the metrics of its earlier processes go (all of them stopped).
        metrics = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        site = f"http://{host}:{port}"
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DELIVERY_ALLOW_PRIVATE_ADDRESSES": "1",  # the sandbox destination is on this machine
            "SITE_URL": os.environ.get("SITE_URL", site),
        }
        logs = settings.DATA_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]

        self._start("sandbox", [*manage, "sandbox_destination", "--port", str(sandbox_port)], env, logs)
        self._wait_for(f"{sandbox_url}/healthz", "the sandbox destination")
        demo.configure_sandbox(sandbox_url)
        setup = demo.set_up(sandbox_url)

        beat_schedule = settings.DATA_DIR / "celerybeat-schedule"
        worker = [sys.executable, "-m", "celery", "-A", "overview", "worker", "-B", "-s", str(beat_schedule)]
        worker += ["-Q", "ingest,route,deliver,alerts", "-c", "3", "--loglevel", "INFO"]
        # Started again if it exits or stops answering pings (devtools/supervise.py says why).
        self.worker = SupervisedWorker(
            worker, default_node("demo"), env, settings.BASE_DIR, logs / "worker.log"
        )
        self.worker.start()
        self._start("web", web_command(host, port), env, logs)
        self._wait_for(f"{site}/login/", "the web server")
        if not no_traffic:
            keys = [arg for name, key in setup.write_keys.items() for arg in ("--write-key", f"{name}={key}")]
            self._start(
                "traffic", [*manage, "demo_traffic", "--url", site, "--rate", str(rate), *keys], env, logs
            )

        self.stdout.write(
            self.style.SUCCESS(f"\nDelivery Overview is running at {site}/\n")
            + f"  Log in as:   {setup.username}\n"
            + f"  Password:    {setup.password}\n"
            + f"  Sandbox destination: {sandbox_url}  (profiles: healthy, partial, flaky partner)\n"
            + f"  Logs:        {logs}\n"
            + f"  Demo traffic: {'off' if no_traffic else f'about {rate:g} events/s'}"
            + " — the dashboard's figures trail now by 5 minutes (the lookback); the API does not.\n"
            + "Press Ctrl-C to stop everything."
        )
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    raise CommandError(
                        f"{name} exited with {process.returncode}; see {logs / (name + '.log')}"
                    )
            if reason := self.worker.check():
                self.stderr.write(f"The worker {reason}; started it again (see {logs / 'worker.log'}).")
            time.sleep(1)

    def _start(self, name: str, command: list[str], env: dict, logs) -> None:
        self.children.append((name, spawn(command, env, settings.BASE_DIR, logs / f"{name}.log")))

    def _wait_for(self, url: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            for name, process in self.children:
                if process.poll() is not None:
                    log = settings.DATA_DIR / "logs" / f"{name}.log"
                    raise CommandError(f"{name} exited while waiting for {what}; see {log}")
            time.sleep(0.2)
        raise CommandError(f"{what} did not answer at {url} within {timeout:.0f}s")

    def _stop_children(self) -> None:
        processes = [process for _, process in reversed(self.children)]
        stop([*processes, self.worker.process] if self.worker else processes)
