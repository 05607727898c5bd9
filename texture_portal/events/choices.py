from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    IN_FLIGHT = "in_flight", _("In flight")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
