"""Platform events and webhooks, a core service that knows no app.

- `types`: the registry of event types. Each app owns its types and their payloads in its `events.py` and
  registers them in its `AppConfig.ready()`; the core validates, lists and documents every registered type.
- `services`: the outbox (`event_emit`, `event_emit_many`, `events_emit_many`, `event_batch_written`) and the
  destinations' writes. An event is recorded in the caller's transaction and handed to destinations after commit.
- `webhooks`: delivery: the private-address guard, signing, one attempt, retries, deactivation, the sweep.
- `tasks`: the Celery side of delivery (fan-out, attempts with backoff, the sweep).

An app adds an event type in three lines (`fleet/events.py` is the model to follow):

    class MeterEventType(models.TextChoices):
        READING_LATE = "meter.reading_late", "meter.reading_late"
    # in the app's AppConfig.ready(): event_types_register(MeterEventType, app_label=self.label)
"""
