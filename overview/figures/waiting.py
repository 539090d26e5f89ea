"""What waits for a retry now, whatever range is shown. The pending-retry step counts the window's
events once the lookback has passed, but most waiting events are minutes old: this reads the outbox
itself, through its open index, so its cost follows the backlog rather than the volume."""

from django.db import connection

from delivery.steps import Step
from overview.figures.results import WaitingNow
from overview.figures.rollup_query import Scope
from overview.windows import Window

# Under all mappings an event is pending when a mapping it reached waits and none finally failed
# (delivery.fanout's rule: a failed mapping makes the whole event failed).
_PER_EVENT = f"""
SELECT count(*), count(*) FILTER (WHERE received_at >= %s AND received_at < %s), min(received_at)
FROM (
    SELECT DISTINCT o.received_at, o.event_id FROM delivery_outcome o
    WHERE o.destination_id = ANY(%s) AND o.source_id = ANY(%s) AND o.mapping_id IS NOT NULL
      AND o.step = '{Step.PENDING_RETRY}'
      AND NOT EXISTS (
          SELECT 1 FROM delivery_outcome f
          WHERE f.received_at = o.received_at AND f.event_id = o.event_id
            AND f.destination_id = o.destination_id AND f.step = '{Step.FAILED_DELIVERY}')
) AS waiting
"""
_PER_PAIR = f"""
SELECT count(*), count(*) FILTER (WHERE received_at >= %s AND received_at < %s), min(received_at)
FROM delivery_outcome
WHERE destination_id = ANY(%s) AND source_id = ANY(%s) AND step = '{Step.PENDING_RETRY}' AND {{mapping}}
"""


def waiting_now(scope: Scope, window: Window) -> WaitingNow | None:
    """Events of the scope's destinations waiting for a retry at this moment; None for a source."""
    if not scope.destination_ids:
        return None
    params: list = [window.start, window.end, list(scope.destination_ids), list(scope.source_ids)]
    if scope.mapping_id is not None:
        sql = _PER_PAIR.format(mapping="mapping_id = %s")
        params.append(scope.mapping_id)
    elif scope.per_mapping:
        sql = _PER_PAIR.format(mapping="mapping_id IS NOT NULL")
    else:
        sql = _PER_EVENT
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        count, in_window, oldest = cursor.fetchone()
    return WaitingNow(count, in_window, oldest)
