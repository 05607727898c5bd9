from django.db import migrations

from fleet.catalog import seed_manufacturers


class Migration(migrations.Migration):
    dependencies = [("integrations", "0002_initial")]

    operations = [migrations.RunPython(seed_manufacturers, migrations.RunPython.noop)]
