from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = "Dispatch"

    def ready(self):
        from dispatch.events import DispatchEventType
        from texture_portal.events.types import event_types_register

        event_types_register(DispatchEventType, app_label=self.label)

        # the Ops home's dispatch panels, and dispatch's part of a device's timeline (the fleet knows neither)
        from dispatch import home, timeline

        home.register()
        timeline.register()

        # the fleet's customer page: the customer's devices in recent and coming events
        from dispatch import customer

        customer.register()
