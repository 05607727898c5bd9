from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The outbox, destinations and deliveries. Its tables kept the names they had when they lived in
    `integrations` (`integrations_platformevent`, …): the move changed the code's place, not the data."""

    name = "texture_portal.events"
    label = "events"
    verbose_name = "Events and webhooks"

    def ready(self):
        from texture_portal.events import checks  # noqa: F401  (registers the system check)
