from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "programs"
    verbose_name = "Programs"

    def ready(self):
        from programs.events import EnrollmentEventType
        from texture_portal.events.types import event_types_register

        event_types_register(EnrollmentEventType, app_label=self.label)
        # dispatch announces an event's end; programs keeps the testing phase's measured exit from it
        # ...and the testing phase's report criterion from `program_event.report_compiled`
        from programs.services import program_test_event_record, program_test_report_record
        from texture_portal.events.subscribers import event_subscribe

        event_subscribe("program_event.completed", program_test_event_record)
        event_subscribe("program_event.report_compiled", program_test_report_record)

        from programs import home

        home.register()
