from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from integrations import customer, home

        home.register()
        # the customer page explains a Registered System with what the workspace's integrations say
        customer.register()
