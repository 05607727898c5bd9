from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0003_import_job"),
        ("texture_portal", "0003_roles_platform_events"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
