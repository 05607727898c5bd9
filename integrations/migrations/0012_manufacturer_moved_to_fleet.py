"""The manufacturer catalog now belongs to the fleet (fleet 0008 took it over with the same table). Here
`integrations` forgets it, in Django's state only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0011_events_moved_to_core"),
        ("fleet", "0008_manufacturer_from_integrations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[], state_operations=[migrations.DeleteModel(name="Manufacturer")]
        ),
    ]
