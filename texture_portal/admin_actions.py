"""Running a service over the selected rows of a changelist, one row at a time, with readable results."""

from django.contrib import messages
from django.core.exceptions import ValidationError

from texture_portal.exceptions import ApplicationError


def run_service_for_each(modeladmin, request, queryset, call, *, done: str, perm_action: str = "change") -> None:
    """`call(obj)` for each selected object the user may change; each in its own transaction (a refusal on
    one row leaves the others done). Reports how many succeeded and each refusal with its reason."""
    succeeded = 0
    for obj in queryset:
        if not request.user.has_perm(modeladmin._perm(perm_action), obj):
            modeladmin.message_user(request, f"{obj}: you may not change this in its workspace.", messages.ERROR)
            continue
        try:
            call(obj)
        except (ApplicationError, ValidationError) as exc:
            text = exc.message if isinstance(exc, ApplicationError) else "; ".join(exc.messages)
            modeladmin.message_user(request, f"{obj}: {text}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
