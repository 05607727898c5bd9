"""Per-request (or per-task) context that audit rows pick up: the correlation id ties together every row
written by one admin save, one API call or one task run."""

import contextvars
import uuid

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def current_correlation_id() -> str:
    value = _correlation_id.get()
    if value is None:
        value = uuid.uuid4().hex
        _correlation_id.set(value)
    return value


def set_correlation_id(value: str | None) -> contextvars.Token:
    return _correlation_id.set(value)


def reset_correlation_id(token: contextvars.Token) -> None:
    _correlation_id.reset(token)
