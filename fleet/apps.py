from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"

    def ready(self):
        from fleet.importing import tasks  # noqa: F401  (registers the import tasks with Celery)
