"""The roles' permissions on the new alert models (Ops changes alerts and the e-mail setting)."""

from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0013_alerts"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
