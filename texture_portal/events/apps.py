from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The outbox, destinations and deliveries. Its tables kept the names they had when they lived in
    `integrations` (`integrations_platformevent`, …): the move changed the code's place, not the data."""

    name = "texture_portal.events"
    label = "events"
    verbose_name = "Events and webhooks"

    def ready(self):
        from texture_portal.events import checks  # noqa: F401  (registers the system check)
        from texture_portal.events.choices import WebhookEventType
        from texture_portal.events.types import event_types_register

        # the service's own type (a destination's test delivery); every other type is an app's
        event_types_register(WebhookEventType, app_label=self.label)
