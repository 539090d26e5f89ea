"""Bulk retries (overview.retries): an outcome put back in the outbox remembers the attempts it had
(`retry_base`, so it gets the destination's full set of retries again) and the job that did it
(`retry_job_id`, indexed only where set, to count that job's delivered and failed events). The failed
attempts get an index of their own: a retry's dry run counts the events that failed and have been
delivered since."""

from django.db import migrations

SQL = """
ALTER TABLE delivery_outcome
    ADD COLUMN retry_base integer NOT NULL DEFAULT 0,
    ADD COLUMN retry_job_id bigint;
CREATE INDEX delivery_outcome_retry_job ON delivery_outcome (retry_job_id, step)
    WHERE retry_job_id IS NOT NULL;
CREATE INDEX delivery_attempt_failed ON delivery_attempt (destination_id, received_at)
    WHERE step = 'failed_delivery';
"""

DROP = """
DROP INDEX IF EXISTS delivery_outcome_retry_job, delivery_attempt_failed;
ALTER TABLE delivery_outcome DROP COLUMN IF EXISTS retry_base, DROP COLUMN IF EXISTS retry_job_id;
"""


class Migration(migrations.Migration):
    dependencies = [("delivery", "0010_rejected_messages")]

    operations = [migrations.RunSQL(SQL, DROP)]
