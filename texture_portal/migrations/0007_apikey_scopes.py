from django.db import migrations, models


def full_access():
    return ["*"]


class Migration(migrations.Migration):
    """Keys carry scopes. Every key made before has full access ("*"), as it had; new keys get what their
    creator chose (the model's default, an empty list, grants nothing)."""

    dependencies = [
        ("texture_portal", "0006_workspace_timezone"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(default=full_access, verbose_name="scopes"),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(
                default=list,
                help_text="What the key may do: “*” full access, “*:read” read-only, or “<resource>:read|write”.",
                verbose_name="scopes",
            ),
        ),
    ]
