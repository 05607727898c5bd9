from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "programs"
    verbose_name = "Programs"

    def ready(self):
        from programs.events import EnrollmentEventType
        from texture_portal.events.types import event_types_register

        event_types_register(EnrollmentEventType, app_label=self.label)
