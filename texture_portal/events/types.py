"""The registry of platform event types.

The core knows no event type of the apps' domains: each app declares the types it owns as a TextChoices in its
`events.py` and registers them from its `AppConfig.ready()`. The events service registers one of its own,
`webhook.test` (a test delivery to one destination). Everything that lists types (the outbox's
validation, the Destination's event-type choices, the API's and the OpenAPI schema's enums) reads the registry
when it is used, after every app is ready, so a new type needs no change here and no migration.
"""

from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from django.db import models

_registered: dict[str, tuple[str, str]] = {}  # type → (label, app label of its owner)


def event_types_register(choices: type[models.TextChoices], *, app_label: str) -> None:
    """Register an app's event types. Registering the same types again (a reloaded app) changes nothing;
    a type another app already owns is a configuration error."""
    for value, label in choices.choices:
        owner = _registered.get(value)
        if owner is not None and owner[1] != app_label:
            raise ImproperlyConfigured(f"Event type {value} is registered by both {owner[1]} and {app_label}.")
        _registered[value] = (str(label), app_label)


def event_type_values() -> list[str]:
    """Every registered type, in a stable order (by name, whatever the order the apps were loaded in)."""
    return sorted(_registered)


def event_type_choices() -> list[tuple[str, str]]:
    """(value, label) of every registered type: the `choices` of model and form fields (a callable)."""
    return [(value, _registered[value][0]) for value in event_type_values()]


def event_type_owner(value: str) -> str | None:
    """The app label of the app that registered the type, or None when no app did."""
    owner = _registered.get(value)
    return owner[1] if owner else None


def unknown_event_types(values) -> list[str]:
    """The given types that no app registered, sorted."""
    return sorted(set(values) - set(_registered))


class _LazyEventTypeChoices(Sequence):
    """The registered (value, label) pairs, read at each use: for serializer fields and the OpenAPI enum
    (`ENUM_NAME_OVERRIDES`), whose classes are built at import time but whose choices must be complete."""

    def __iter__(self):
        return iter(event_type_choices())

    def __getitem__(self, index):
        return event_type_choices()[index]

    def __len__(self) -> int:
        return len(_registered)


EVENT_TYPE_CHOICES = _LazyEventTypeChoices()
