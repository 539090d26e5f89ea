"""Fault injection on the real stack: for each scenario, events sent through the tracking API, one
fault injected mid-stream, and after the pipeline settles, every event accounted for.

Each scenario runs on a stack of its own (`tests.faults.stack`: its own PostgreSQL and Redis servers,
gunicorn, a Celery worker, beat and a destination server), so that a fault that breaks the stack for
good shows in its own row only. Prints one row a scenario (`tests.faults.scenarios`): sent, stored,
delivered, failed, pending, lost, double-counted, stuck, destination duplicates, seconds from the last
event sent to settled, verdict; then notes. Everything it starts is stopped and its folders removed
(--keep keeps them, logs included), also on Ctrl-C or SIGTERM.

    .venv/bin/python bench/faults.py [--events 2000] [--rate 200] [--scenarios worker_sigkill,redis_wiped]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.scenarios import SCENARIOS, Row, run_scenario, table  # noqa: E402
from tests.faults.stack import Stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="events sent per scenario")
    parser.add_argument("--rate", type=float, default=200, help="events/s sent")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--keep", action="store_true", help="keep each stack's folder (logs) afterwards")
    args = parser.parse_args()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if unknown := [name for name in names if name not in SCENARIOS]:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    # SIGTERM unwinds like Ctrl-C, so the stack's clean-up runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    print(f"{len(names)} scenarios, {args.events:,} events each at {args.rate:,.0f}/s", flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    for name in names:
        began = time.monotonic()
        with Stack(keep=args.keep) as stack:
            up = time.monotonic() - began
            rows.append(run_scenario(stack, name, args.events, args.rate))
        took = time.monotonic() - began
        print(f"  {name}: {rows[-1].verdict} (stack up in {up:.0f} s, {took:.0f} s in all)", flush=True)
    print()
    print(table(rows))
    print(f"\n{len(rows)} scenarios in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
