from django.apps import AppConfig


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet"

    def ready(self):
        from fleet.events import FleetEventType
        from fleet.importing import tasks  # noqa: F401  (registers the import tasks with Celery)
        from texture_portal.events.types import event_types_register

        event_types_register(FleetEventType, app_label=self.label)

        from fleet import home, timeline

        home.register()
        timeline.register()

        # Customer Support's home panel, navigation and the search box's customers
        from fleet import home_support

        home_support.register()
