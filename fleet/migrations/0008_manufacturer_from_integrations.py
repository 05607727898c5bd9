"""The manufacturer catalog moves from `integrations` to the fleet (the device's maker is the fleet's own
vocabulary: the CSV's `manufacturerSlug`, the device's serial scope), in Django's state only: the table
`integrations_manufacturer`, its rows and the devices' foreign key stay exactly as they are. `integrations`
0012 then forgets the model, and fleet 0009 moves its content type and roles."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0007_telemetry_workspace_unconstrained"),
        ("integrations", "0011_events_moved_to_core"),
        # the events' move (and its content types) completes first: fleet 0009 syncs the roles again, which
        # must not create the events' content types anew before events 0002 relabels the old ones
        ("events", "0002_content_types_roles_type_check"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Manufacturer",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "created",
                            models.DateTimeField(
                                default=django.utils.timezone.now, editable=False, verbose_name="created"
                            ),
                        ),
                        ("last_updated", models.DateTimeField(auto_now=True, verbose_name="last updated")),
                        ("slug", models.SlugField(max_length=60, unique=True, verbose_name="slug")),
                        ("name", models.CharField(max_length=120, verbose_name="name")),
                        ("aliases", models.JSONField(blank=True, default=list, verbose_name="aliases")),
                        ("device_types", models.JSONField(default=list, verbose_name="device types")),
                        ("integration_channel", models.CharField(max_length=30, verbose_name="integration channel")),
                        (
                            "supports_grid_services",
                            models.BooleanField(default=False, verbose_name="supports grid services"),
                        ),
                        (
                            "is_read_only",
                            models.BooleanField(
                                default=False,
                                help_text="Monitoring only: the OEM API takes no commands.",
                                verbose_name="read-only",
                            ),
                        ),
                        (
                            "support_level",
                            models.CharField(
                                choices=[("production", "Production"), ("planned", "Planned")],
                                default="production",
                                max_length=20,
                                verbose_name="support level",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "manufacturer",
                        "verbose_name_plural": "manufacturers",
                        "db_table": "integrations_manufacturer",
                        "ordering": ["name"],
                    },
                ),
                migrations.AlterField(
                    model_name="device",
                    name="manufacturer",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="devices",
                        to="fleet.manufacturer",
                        verbose_name="manufacturer",
                    ),
                ),
            ],
        ),
    ]
