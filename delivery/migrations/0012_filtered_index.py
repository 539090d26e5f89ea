"""Re-routing (overview.retries): a destination's events filtered there as a whole, newest first, by
cursor, read from an index of their own (only those rows are in it)."""

from django.db import migrations

SQL = """
CREATE INDEX delivery_outcome_filtered ON delivery_outcome (destination_id, received_at DESC, id DESC)
    WHERE step = 'filtered_at_destination' AND mapping_id IS NULL;
"""

DROP = "DROP INDEX IF EXISTS delivery_outcome_filtered;"


class Migration(migrations.Migration):
    dependencies = [("delivery", "0011_outcome_retries")]

    operations = [migrations.RunSQL(SQL, DROP)]
