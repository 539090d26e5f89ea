"""How many mappings of its destination an outcome's event reached (`fanout`): delivery recomputes the
event's step as a whole (delivery.fanout) only when it is more than one, and mirrors it otherwise.
A constant default, so PostgreSQL adds the column without rewriting the partitions."""

from django.db import migrations

SQL = "ALTER TABLE delivery_outcome ADD COLUMN fanout smallint NOT NULL DEFAULT 1;"


class Migration(migrations.Migration):
    dependencies = [("delivery", "0004_daily_rollups")]

    operations = [migrations.RunSQL(SQL, "ALTER TABLE delivery_outcome DROP COLUMN fanout;")]
