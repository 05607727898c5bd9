"""Existing workspaces get the timezone their staff already think in: their programs' zone when every program
of the workspace has the same one; a workspace without programs (a sandbox) takes its organization's programs'
zone when they all agree; anything else stays UTC. Lives in `programs` because the core knows no app."""

from django.db import migrations


def zones_from_programs(apps, schema_editor):
    Program = apps.get_model("programs", "Program")
    Workspace = apps.get_model("texture_portal", "Workspace")
    by_workspace: dict[int, set[str]] = {}
    by_organization: dict[int, set[str]] = {}
    for workspace_id, organization_id, zone in Program.objects.values_list(
        "workspace_id", "workspace__organization_id", "timezone"
    ):
        by_workspace.setdefault(workspace_id, set()).add(zone)
        by_organization.setdefault(organization_id, set()).add(zone)
    for workspace in Workspace.objects.filter(timezone="UTC").only("pk", "organization_id"):
        zones = by_workspace.get(workspace.pk) or by_organization.get(workspace.organization_id) or {"UTC"}
        if len(zones) == 1 and (zone := next(iter(zones))) != "UTC":
            Workspace.objects.filter(pk=workspace.pk).update(timezone=zone)


class Migration(migrations.Migration):
    dependencies = [
        ("programs", "0008_program_health_days"),
        ("texture_portal", "0006_workspace_timezone"),
    ]

    operations = [migrations.RunPython(zones_from_programs, migrations.RunPython.noop)]
