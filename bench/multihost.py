"""Delivery throughput with one worker host and with two, in the same run, on the multi-host stack of
tests/hosts.py: the web server and beat on one host, Celery workers on their own hosts (network
namespaces on a bridge), one PostgreSQL and one Redis reached over it, the sandbox destination on the
bridge. Needs root (it creates the namespaces; everything it makes is removed at the end).

For each destination profile (answering at once; answering after --latency seconds, as a distant API
does), N events go to the web host's tracking API for --destinations webhook destinations (batch size
100), first with one worker host (the other's worker stopped), then with both; the figure is
deliveries a second from the first event posted to the last outcome final, and the ratio two hosts
over one.

    .venv/bin/python bench/multihost.py [--events 4000] [--destinations 4] [--latency 0.2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")

from devtools import sandbox as sandbox_module  # noqa: E402
from devtools.sandbox import SandboxServer  # noqa: E402
from tests.hosts import Cluster  # noqa: E402

sandbox_module.REQUEST_LOG_SIZE = 10  # the bench reads outcomes, not the request log


def run(cluster: Cluster, sandbox: SandboxServer, label: str, profile: tuple[str, dict], events: int,
        destinations: int) -> float:  # fmt: skip
    """Deliveries a second for one fresh pipeline of `destinations` destinations and `events` events."""
    slots = [f"{label}-{i}" for i in range(destinations)]
    for slot in slots:
        sandbox.configure(slot, profile[0], **profile[1])
    write_key, ids = cluster.pipeline([f"{sandbox.url}/{slot}/webhook" for slot in slots])
    tag = uuid.uuid4().hex[:6]
    messages = [
        {"type": "track", "event": "Order Completed", "messageId": f"{tag}-{i}", "userId": f"u{i % 500}"}
        for i in range(events)
    ]
    started = time.monotonic()
    cluster.send(write_key, messages, per_request=500)
    cluster.settled(ids, events, timeout=1800)
    return events * destinations / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=4_000, help="events per measurement")
    parser.add_argument("--destinations", type=int, default=4, help="webhook destinations per measurement")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the slow profile takes to answer")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes per worker host")
    args = parser.parse_args()

    env = {"DELIVERY_FLUSH_SECONDS": "0.2"}
    run_id = uuid.uuid4().hex[:8]
    print(f"{os.cpu_count()} CPUs; {args.events} events x {args.destinations} destinations a measurement;")
    print(f"each worker host: celery worker -c {args.concurrency}; beat and gunicorn -w 2 on the web host")
    with (
        Cluster(run_id, workers=2, env=env) as cluster,
        SandboxServer(host=cluster.network.address) as sandbox,
    ):
        first, second = cluster.worker_hosts
        for host in (first, second):  # the configured concurrency, not the harness's default
            cluster.workers[host.name].stop()
            cluster.workers[host.name] = cluster.start_worker(host, args.concurrency)
        profiles = {
            "at once": ("healthy", {}),
            f"after {args.latency:g} s": ("flaky", {"cycle": ["slow"], "slow_seconds": args.latency}),
        }
        rows = []
        for n, (name, profile) in enumerate(profiles.items()):
            rates = {}
            for hosts in (1, 2):
                label = f"p{n}h{hosts}"
                if hosts == 1:
                    cluster.workers[second.name].stop()
                else:
                    cluster.workers[second.name] = cluster.start_worker(second, args.concurrency)
                rates[hosts] = run(cluster, sandbox, label, profile, args.events, args.destinations)
                print(f"  answering {name}, {hosts} worker host(s): {rates[hosts]:,.0f} deliveries/s")
            rows.append((name, rates[1], rates[2]))
        print("\n| destination answers | 1 worker host | 2 worker hosts | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for name, one, two in rows:
            print(f"| {name} | {one:,.0f}/s | {two:,.0f}/s | {two / one:.2f} |")


if __name__ == "__main__":
    main()
