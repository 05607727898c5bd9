from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from integrations import customer, home
        from integrations.events import IntegrationEventType
        from texture_portal.events.types import event_types_register

        event_types_register(IntegrationEventType, app_label=self.label)

        home.register()
        # the customer page explains a Registered System with what the workspace's integrations say
        customer.register()
        # the customer's own OEM accounts (Texture Connect) and their Connect sessions on the customer page
        customer.register_section()
