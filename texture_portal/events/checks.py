"""A subscription to an event type no app registered is a typo that would never fire: refuse to start."""

from django.core import checks

from texture_portal.events.subscribers import unknown_subscribed_types


@checks.register()
def check_subscribed_types(app_configs=None, **kwargs):
    return [
        checks.Error(
            f"A subscriber listens to the event type “{event_type}”, which no app registers.",
            hint="Check the type's name against the apps' events.py.",
            id="events.E001",
        )
        for event_type in unknown_subscribed_types()
    ]
