from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        # the customer page explains a Registered System with what the workspace's integrations say
        from integrations import customer

        customer.register()
