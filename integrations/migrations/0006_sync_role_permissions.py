from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    """Role permissions for API keys, destinations and the delivery log."""

    dependencies = [
        ("integrations", "0005_destinations"),
        ("texture_portal", "0004_apikey"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
