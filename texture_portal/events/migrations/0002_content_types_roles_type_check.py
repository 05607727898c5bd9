"""After the move (events 0001, integrations 0011):

- the three models' content types change app label, so their permissions, the roles holding them, admin log
  entries and audit rows (which point at content types) follow the models instead of going stale;
- the roles are synced again (`events.view_platformevent`, …);
- the check listing every event type goes: the types belong to the apps that register them
  (`texture_portal.events.types`), and the outbox's services refuse unregistered ones.
"""

from django.db import migrations

from texture_portal.model_moves import content_types_relabel
from texture_portal.roles import sync_role_groups

MOVED_MODELS = ("platformevent", "destination", "deliveryattempt")


def content_types_to_events(apps, schema_editor):
    content_types_relabel(apps, models=MOVED_MODELS, source="integrations", target="events")


def content_types_to_integrations(apps, schema_editor):
    content_types_relabel(apps, models=MOVED_MODELS, source="events", target="integrations")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("events", "0001_initial"),
        ("integrations", "0011_events_moved_to_core"),
    ]

    operations = [
        migrations.RunPython(content_types_to_events, content_types_to_integrations),
        migrations.RunPython(sync_role_groups, migrations.RunPython.noop),
        # dropping a check is instant; adding one would scan (and lock) the largest table of the portal
        migrations.RemoveConstraint(model_name="platformevent", name="platform_event_type_valid"),
    ]
