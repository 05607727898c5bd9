from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    IN_FLIGHT = "in_flight", _("In flight")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class WebhookEventType(models.TextChoices):
    """The events service's own type: a test delivery staff send to one destination (`destination_test_send`).
    Never fanned out to other destinations, never swept, never retried."""

    TEST = "webhook.test", "webhook.test"
