from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    """Texture Connect: customer connections and Connect sessions are seen by every role that reads the
    workspace; Customer Support and Engineering may send links; nobody edits a connection's tokens."""

    dependencies = [
        ("texture_portal", "0003_roles_platform_events"),
        ("integrations", "0014_connect_sessions"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
