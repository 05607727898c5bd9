"""The outbox, destinations and delivery attempts now belong to the events service (`texture_portal.events`,
app label `events`), which took them over in its migration 0001 with the same tables. Here `integrations`
forgets them, in Django's state only: no table, row or constraint is dropped."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0010_platform_event_workspace_unconstrained"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveField(model_name="destination", name="created_by"),
                migrations.RemoveField(model_name="destination", name="workspace"),
                migrations.RemoveField(model_name="platformevent", name="workspace"),
                migrations.DeleteModel(name="DeliveryAttempt"),
                migrations.DeleteModel(name="Destination"),
                migrations.DeleteModel(name="PlatformEvent"),
            ],
        ),
    ]
