"""Joins the two 0004 branches and syncs the role permissions once every model of the merged branches exists."""

from django.db import migrations

from texture_portal.roles import sync_role_groups


class Migration(migrations.Migration):
    dependencies = [
        ("texture_portal", "0004_apikey"),
        ("texture_portal", "0004_audit_action_without_choices"),
        ("fleet", "0004_sync_role_permissions"),
        ("integrations", "0008_sync_role_permissions"),
    ]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
