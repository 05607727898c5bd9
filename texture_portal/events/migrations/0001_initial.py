"""The outbox, destinations and delivery attempts move from `integrations` to the events service: in Django's
state only. Their tables, rows, indexes and constraints stay exactly as they are (`db_table` keeps the old
names); `integrations` 0011 then forgets the models, and events 0002 moves their content types and roles."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import texture_portal.events.types
import texture_portal.fields


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("integrations", "0010_platform_event_workspace_unconstrained"),
        ("texture_portal", "0005_merge_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Destination",
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
                        ("label", models.CharField(max_length=100, verbose_name="label")),
                        ("url", models.URLField(max_length=500, verbose_name="URL")),
                        (
                            "signing_secret",
                            texture_portal.fields.EncryptedJSONField(
                                blank=True, default=dict, editable=False, verbose_name="signing secret"
                            ),
                        ),
                        (
                            "event_types",
                            models.JSONField(
                                blank=True,
                                default=list,
                                help_text="Empty: every event type (firehose).",
                                verbose_name="event types",
                            ),
                        ),
                        ("is_active", models.BooleanField(default=True, verbose_name="active")),
                        (
                            "deactivated_at",
                            models.DateTimeField(blank=True, editable=False, null=True, verbose_name="deactivated"),
                        ),
                        (
                            "deactivated_reason",
                            models.CharField(
                                blank=True, editable=False, max_length=300, verbose_name="deactivation reason"
                            ),
                        ),
                        (
                            "consecutive_failures",
                            models.PositiveIntegerField(default=0, editable=False, verbose_name="failures in a row"),
                        ),
                        (
                            "last_success_at",
                            models.DateTimeField(blank=True, editable=False, null=True, verbose_name="last success"),
                        ),
                        (
                            "last_failure_at",
                            models.DateTimeField(blank=True, editable=False, null=True, verbose_name="last failure"),
                        ),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                editable=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="texture_portal.workspace",
                                verbose_name="workspace",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "destination",
                        "verbose_name_plural": "destinations",
                        "db_table": "integrations_destination",
                        "ordering": ["label", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="PlatformEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "type",
                            models.CharField(
                                choices=texture_portal.events.types.event_type_choices,
                                max_length=60,
                                verbose_name="type",
                            ),
                        ),
                        ("version", models.PositiveSmallIntegerField(default=1, verbose_name="schema version")),
                        ("key", models.CharField(max_length=200, verbose_name="key")),
                        (
                            "timestamp",
                            models.DateTimeField(default=django.utils.timezone.now, verbose_name="timestamp"),
                        ),
                        ("data", models.JSONField(default=dict, verbose_name="data")),
                        (
                            "workspace",
                            models.ForeignKey(
                                db_constraint=False,
                                db_index=False,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="texture_portal.workspace",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "platform event",
                        "verbose_name_plural": "platform events",
                        "db_table": "integrations_platformevent",
                        "ordering": ["-timestamp", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="DeliveryAttempt",
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
                        ("attempt", models.PositiveSmallIntegerField(verbose_name="attempt")),
                        (
                            "status",
                            models.CharField(
                                choices=[("in_flight", "In flight"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                                max_length=20,
                                verbose_name="status",
                            ),
                        ),
                        (
                            "response_status",
                            models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="HTTP status"),
                        ),
                        (
                            "response_excerpt",
                            models.CharField(blank=True, max_length=500, verbose_name="response (excerpt)"),
                        ),
                        ("error", models.CharField(blank=True, max_length=500, verbose_name="error")),
                        (
                            "duration_ms",
                            models.PositiveIntegerField(blank=True, null=True, verbose_name="duration (ms)"),
                        ),
                        ("next_attempt_at", models.DateTimeField(blank=True, null=True, verbose_name="next attempt")),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="texture_portal.workspace",
                                verbose_name="workspace",
                            ),
                        ),
                        (
                            "destination",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="attempts",
                                to="events.destination",
                            ),
                        ),
                        (
                            "event",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="events.platformevent"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "delivery attempt",
                        "verbose_name_plural": "delivery attempts",
                        "db_table": "integrations_deliveryattempt",
                        "ordering": ["-created", "-id"],
                    },
                ),
                migrations.AddIndex(
                    model_name="destination",
                    index=models.Index(fields=["workspace", "is_active"], name="destination_active_idx"),
                ),
                migrations.AddConstraint(
                    model_name="destination",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("is_active", True), models.Q(("deactivated_reason", ""), _negated=True), _connector="OR"
                        ),
                        name="destination_inactive_has_reason",
                    ),
                ),
                migrations.AddIndex(
                    model_name="platformevent",
                    index=models.Index(fields=["workspace", "type", "-timestamp"], name="platform_event_type_idx"),
                ),
                migrations.AddConstraint(
                    model_name="platformevent",
                    constraint=models.UniqueConstraint(fields=("workspace", "key"), name="platform_event_key_unique"),
                ),
                migrations.AddConstraint(
                    model_name="platformevent",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            (
                                "type__in",
                                [
                                    "device.discovered",
                                    "device.connected",
                                    "device.disconnected",
                                    "device.updated",
                                    "command.succeeded",
                                    "command.failed",
                                    "enrollment.submitted",
                                    "enrollment.approved",
                                    "enrollment.rejected",
                                    "enrollment.unenrolled",
                                    "customer.created",
                                    "customer.updated",
                                    "site.created",
                                    "site.updated",
                                    "program_event.scheduled",
                                    "program_event.started",
                                    "program_event.completed",
                                    "program_event.cancelled",
                                ],
                            )
                        ),
                        name="platform_event_type_valid",
                    ),
                ),
                migrations.AddIndex(
                    model_name="deliveryattempt",
                    index=models.Index(fields=["destination", "-created"], name="delivery_destination_idx"),
                ),
                migrations.AddIndex(
                    model_name="deliveryattempt",
                    index=models.Index(fields=["event", "destination", "status"], name="delivery_event_idx"),
                ),
                migrations.AddConstraint(
                    model_name="deliveryattempt",
                    constraint=models.UniqueConstraint(
                        fields=("destination", "event", "attempt"), name="delivery_attempt_unique"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="deliveryattempt",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("attempt__gte", 1)), name="delivery_attempt_positive"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="deliveryattempt",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("status__in", ["in_flight", "succeeded", "failed"])),
                        name="delivery_status_valid",
                    ),
                ),
            ],
        ),
    ]
