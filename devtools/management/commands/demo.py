"""Run the whole product on this machine with live demo traffic; Ctrl-C stops everything."""

import os
import signal
import subprocess
import sys
import time

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devtools import demo, embedded


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
        self._start("worker", worker, env, logs)
        web = [sys.executable, "-m", "gunicorn", "overview.wsgi", "-b", f"{host}:{port}", "-w", "3"]
        self._start("web", web, env, logs)
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
            time.sleep(1)

    def _start(self, name: str, command: list[str], env: dict, logs) -> None:
        log = (logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            env=env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append((name, process))

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
        for _, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in self.children:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
