from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("texture_portal", "0002_roles"),
        ("integrations", "0004_platform_event"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
