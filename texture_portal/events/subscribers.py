"""In-process subscribers: an app reacts to another app's platform event in the same transaction, through the
core, without importing that app (programs records the test event that completed end to end from dispatch's
`program_event.completed`; dispatch never calls programs, programs never imports dispatch).

A subscriber is called by `event_emit`, inside the emitter's transaction, with the event's workspace, type,
key, timestamp and data. It must be idempotent (an event emitted twice is recorded once but may be handed
to its subscribers twice) and quick. Bulk emits (imports, telemetry) do not call subscribers, so they refuse
a type that has any: a subscriber never silently misses an event.
"""

from collections import defaultdict
from collections.abc import Callable

from texture_portal.events.types import unknown_event_types

_subscribers: dict[str, list[Callable]] = defaultdict(list)


def event_subscribe(event_type: str, subscriber: Callable) -> None:
    """Call `subscriber(workspace_id=, type=, key=, timestamp=, data=)` for every event of this type emitted
    one at a time. The type must be registered (subscribe from `ready()` after the owner's registration,
    or name the type as a string: the check runs at the first emit)."""
    if subscriber not in _subscribers[event_type]:
        _subscribers[event_type].append(subscriber)


def subscribers_of(event_type: str) -> list[Callable]:
    return list(_subscribers.get(event_type, ()))


def subscribed_types() -> set[str]:
    return {t for t, subs in _subscribers.items() if subs}


def unknown_subscribed_types() -> list[str]:
    """Types someone subscribed to that no app registered (a typo), for the system check."""
    return unknown_event_types(subscribed_types())
