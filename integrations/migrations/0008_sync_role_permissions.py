from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    """Integration runs: every role that reads the workspace can see them; nobody edits them."""

    dependencies = [
        ("texture_portal", "0003_roles_platform_events"),
        ("integrations", "0007_integration_run"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
