"""Indexes for customer support's search (fleet.customer.customer_search), PostgreSQL only.

Each lookup the search makes is a prefix or an equality, answered from a B-tree led by workspace_id:
- `upper(col) text_pattern_ops` for case-insensitive prefixes (Django's `istartswith` is `UPPER(col::text) LIKE
  UPPER('term%')`, which the planner turns into a range on such an index whatever the database's collation);
- `reverse(upper(reference_id))` for an account number typed without its prefix (`100333` → `TRE-100333`: a
  suffix of the number is a prefix of its reverse);
- the E.164 phone as stored (the search normalizes what is typed the way the import does) for equality.
No `%term%` scans: trigram indexes need pg_trgm, which deployments do not install. The device serial's index
does not cost telemetry's in-place (HOT) updates: they never change system_identifier.

The demo's SQLite gets none of these (its tables are small). Created with IF NOT EXISTS, dropped on reverse.
"""

from django.db import migrations

INDEXES = {
    "contact_reference_upper_idx": "fleet_contact (workspace_id, upper(reference_id) text_pattern_ops)",
    "contact_reference_reversed_idx": "fleet_contact (workspace_id, reverse(upper(reference_id)) text_pattern_ops)",
    # last name, then first name: "Carmen Chen" narrows in the index, without reading every Chen's row
    "contact_last_first_upper_idx": (
        "fleet_contact (workspace_id, upper(last_name) text_pattern_ops, upper(first_name) text_pattern_ops)"
    ),
    "contact_first_name_upper_idx": "fleet_contact (workspace_id, upper(first_name) text_pattern_ops)",
    "contact_email_upper_idx": "fleet_contact (workspace_id, upper(email) text_pattern_ops)",
    "contact_phone_idx": "fleet_contact (workspace_id, phone)",
    "site_street_upper_idx": "fleet_site (workspace_id, upper(street_one) text_pattern_ops)",
    "site_reference_upper_idx": "fleet_site (workspace_id, upper(site_reference_id))",
    "device_serial_upper_idx": "fleet_device (workspace_id, upper(system_identifier) text_pattern_ops)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("fleet", "0014_alert_roles")]

    operations = [migrations.RunPython(create, drop)]
