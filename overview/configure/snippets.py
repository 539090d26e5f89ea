"""Copyable code that points a common analytics client at this host with a source's write key."""

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    key: str
    label: str
    code: str


def snippets(host: str, write_key: str) -> list[Snippet]:
    """`host` is this site's base URL as the operator reaches it (no trailing slash)."""
    event = {
        "userId": "user-42",
        "event": "Order Completed",
        "properties": {"order_id": "A-1001", "total": 59.9},
    }
    return [
        Snippet(
            "python",
            "Python",
            "# pip install segment-analytics-python\n"
            "import segment.analytics as analytics\n\n"
            f"analytics.write_key = {write_key!r}\n"
            f"analytics.host = {host!r}\n\n"
            "analytics.track('user-42', 'Order Completed', {'order_id': 'A-1001', 'total': 59.9})\n"
            "analytics.flush()\n",
        ),
        Snippet(
            "node",
            "Node.js",
            "// npm install @segment/analytics-node\n"
            "import { Analytics } from '@segment/analytics-node'\n\n"
            f"const analytics = new Analytics({{ writeKey: '{write_key}', host: '{host}',"
            " path: '/v1/batch' })\n\n"
            "analytics.track({ userId: 'user-42', event: 'Order Completed',"
            " properties: { order_id: 'A-1001', total: 59.9 } })\n",
        ),
        Snippet(
            "curl",
            "HTTP",
            f"curl {host}/v1/track \\\n"
            f"  -u '{write_key}:' \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -d '{json.dumps(event)}'\n",
        ),
    ]
