"""What the database and one process can do at all, with plain psycopg and no project code: the limits the
pipeline's benches are measured against, as a ratio, in the same run (the machine's speed varies by two
times from day to day; a ratio to its own limit does not).

(a) **store**: the rows ingest and routing store per event — the event (a ~600-byte JSON payload) and two
    outcome rows — written by binary COPY into plain tables of the same columns, 500 events a transaction
    (a primary key and the open outcomes' index; not the project's daily partitions and other indexes).
(b) **deliver**: one process's delivery loop — claim 100 due outcomes (UPDATE … FOR UPDATE SKIP LOCKED),
    POST their payloads as one JSON request to a minimal local HTTP sink (another process), record the
    results (UPDATE … FROM unnest) — as fast as it goes.

    .venv/bin/python bench/limits.py [--events 100000] [--database-url URL]

Both run in a schema of their own (`bench_limits`), dropped at the end. `bench/ingest.py --with-limits` and
`bench/deliver.py --with-limits` run them on their own database and print their figure as a ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCHEMA = "bench_limits"
STORE_TRANSACTION = 500  # events a transaction
CLAIM = 100  # outcomes a delivery request


def payload(i: int) -> str:
    """A track message of about 600 bytes, as the ingest bench sends."""
    return json.dumps(
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": str(uuid.uuid4()),
            "userId": f"user-{i % 5000}",
            "anonymousId": str(uuid.uuid4()),
            "timestamp": "2026-12-01T10:00:00.000Z",
            "receivedAt": "2026-12-01T10:00:00.120Z",
            "context": {"library": {"name": "analytics-python", "version": "2.3.3"}, "ip": "203.0.113.7"},
            "properties": {
                "order_id": f"o-{i}",
                "total": 42.5,
                "currency": "EUR",
                "items": i % 7,
                "x": "y" * 60,
            },
        }
    )


def _fresh_schema(connection) -> None:
    connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    connection.execute(f"CREATE SCHEMA {SCHEMA}")
    connection.execute(
        f"CREATE TABLE {SCHEMA}.event (id bigserial PRIMARY KEY, received_at timestamptz, workspace_id int8,"
        " source_id int8, message_id text, type text, name text, app_version text, payload jsonb,"
        " routed_at timestamptz)"
    )
    connection.execute(
        f"CREATE TABLE {SCHEMA}.outcome (id bigserial PRIMARY KEY, received_at timestamptz, event_id int8,"
        " workspace_id int8, source_id int8, destination_id int8, mapping_id int8, event_type text,"
        " event_name text, app_version text, step text, reason_code text, next_attempt_at timestamptz,"
        " updated_at timestamptz, fanout int2, status int4, error_message text, attempts int4 DEFAULT 0)"
    )
    connection.execute(
        f"CREATE INDEX ON {SCHEMA}.outcome (destination_id, mapping_id, next_attempt_at)"
        " WHERE step IN ('queued', 'pending_retry')"
    )


def store_limit(database_url: str, events: int) -> float:
    """(a): events a second, each an event row and two outcome rows, COPY'd 500 events a transaction."""
    import psycopg

    payloads = [payload(i) for i in range(events)]
    with psycopg.connect(database_url, autocommit=True) as connection:
        _fresh_schema(connection)
        connection.autocommit = False
        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        next_id = 1
        for start in range(0, events, STORE_TRANSACTION):
            chunk = payloads[start : start + STORE_TRANSACTION]
            with connection.cursor() as cursor:
                with cursor.copy(
                    f"COPY {SCHEMA}.event (id, received_at, workspace_id, source_id, message_id, type, name,"
                    " app_version, payload, routed_at) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        ["int8", "timestamptz", "int8", "int8", "text", "text", "text", "text", "jsonb",
                         "timestamptz"]
                    )  # fmt: skip
                    for n, body in enumerate(chunk):
                        copy.write_row(
                            (next_id + n, now, 1, 1, str(n), "track", "Order Completed", "", body, now)
                        )
                with cursor.copy(
                    f"COPY {SCHEMA}.outcome (received_at, event_id, workspace_id, source_id, destination_id,"
                    " mapping_id, event_type, event_name, app_version, step, reason_code, next_attempt_at,"
                    " updated_at, fanout) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(
                        ["timestamptz", "int8", "int8", "int8", "int8", "int8", "text", "text", "text",
                         "text", "text", "timestamptz", "timestamptz", "int2"]
                    )  # fmt: skip
                    for n in range(len(chunk)):
                        for mapping in (1, 2):
                            copy.write_row(
                                (now, next_id + n, 1, 1, 1, mapping, "track", "Order Completed", "", "queued",
                                 "", now, now, 2)
                            )  # fmt: skip
            connection.commit()
            next_id += len(chunk)
        took = time.perf_counter() - started
        connection.autocommit = True
        connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    return events / took


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait for an ACK

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def _serve(port, ready) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    port.value = server.server_address[1]
    ready.set()
    server.serve_forever()


def deliver_limit(database_url: str, events: int) -> float:
    """(b): outcomes a second one process claims, sends (100 a request) and records."""
    import httpx
    import psycopg

    port, ready = multiprocessing.Value("i", 0), multiprocessing.Event()
    sink = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port.value}/hook"
    try:
        with psycopg.connect(database_url, autocommit=True) as connection, httpx.Client() as client:
            _fresh_schema(connection)
            now = dt.datetime.now(dt.UTC)
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY {SCHEMA}.event (id, received_at, workspace_id, source_id, message_id, type, name,"
                    " app_version, payload, routed_at) FROM STDIN"
                ) as copy,
            ):
                for i in range(events):
                    copy.write_row(
                        (i + 1, now, 1, 1, str(i), "track", "Order Completed", "", payload(i), now)
                    )
            connection.execute(
                f"INSERT INTO {SCHEMA}.outcome (received_at, event_id, workspace_id, source_id,"
                " destination_id, mapping_id, step, reason_code, next_attempt_at, updated_at, fanout)"
                f" SELECT received_at, id, 1, 1, 1, 1, 'queued', '', now(), now(), 1 FROM {SCHEMA}.event"
            )
            connection.execute(f"VACUUM ANALYZE {SCHEMA}.outcome")
            started, done = time.perf_counter(), 0
            while done < events:
                with connection.transaction():
                    claimed = connection.execute(
                        f"UPDATE {SCHEMA}.outcome o SET next_attempt_at = now() + interval '60 seconds',"
                        " attempts = attempts + 1 FROM (SELECT id FROM "
                        f"{SCHEMA}.outcome WHERE destination_id = 1 AND mapping_id = 1 AND step IN"
                        " ('queued', 'pending_retry') AND next_attempt_at <= now() ORDER BY next_attempt_at"
                        " LIMIT %s FOR UPDATE SKIP LOCKED) due WHERE o.id = due.id"
                        " RETURNING o.id, o.event_id",
                        [CLAIM],
                    ).fetchall()
                if not claimed:
                    break
                bodies = connection.execute(
                    f"SELECT payload::text FROM {SCHEMA}.event WHERE id = ANY(%s)", [[e for _, e in claimed]]
                ).fetchall()
                body = '{"batch":[' + ",".join(b for (b,) in bodies) + "]}"
                answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
                with connection.transaction():
                    connection.execute(
                        f"UPDATE {SCHEMA}.outcome o SET step = 'delivered', status = %s, updated_at = now(),"
                        " next_attempt_at = NULL FROM unnest(%s::int8[]) AS u(id) WHERE o.id = u.id",
                        [answer.status_code, [i for i, _ in claimed]],
                    )
                done += len(claimed)
            took = time.perf_counter() - started
            connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        sink.terminate()
        sink.join(5)
    return done / took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="the server to measure (default: DATABASE_URL, else the machine's PostgreSQL)",
    )
    args = parser.parse_args()
    print(f"(a) store, COPY {STORE_TRANSACTION} events a transaction: "
          f"{store_limit(args.database_url, args.events):,.0f} events/s", flush=True)  # fmt: skip
    print(f"(b) deliver, one process, {CLAIM} a request to a local sink: "
          f"{deliver_limit(args.database_url, args.events):,.0f} events/s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
