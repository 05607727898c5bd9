"""`{% load local_time %}{{ job.created|local_time }}`: a time in a custom admin template as the admin shows
every other one — in the active zone (the user's workspace's), labelled, the UTC instant on hover."""

from datetime import datetime

from django import template
from django.utils import timezone

from texture_portal.timezones import time_html

register = template.Library()


@register.filter(is_safe=True)
def local_time(value):
    if isinstance(value, datetime) and timezone.is_aware(value):
        return time_html(value)
    return "—" if value in (None, "") else value
