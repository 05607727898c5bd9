"""A BRIN index on readings' measured_at (PostgreSQL only), for the retention job's "older than" scans.

Readings arrive in time order, so a block-range index stays a few pages for hundreds of millions of rows and
costs the ingest next to nothing, where a B-tree on measured_at alone would be written for every reading. The
demo's SQLite has no BRIN (and no table that size): nothing there."""

from django.db import migrations

INDEX = "telemetry_measured_at_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON fleet_telemetryreading USING brin (measured_at)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("fleet", "0011_telemetry_rollup")]

    operations = [migrations.RunPython(create, drop)]
