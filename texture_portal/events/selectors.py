"""Reads of the events service: destinations with their recent delivery figures, and the delivery log."""

import datetime

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from texture_portal.events.choices import DeliveryStatus
from texture_portal.events.models import DeliveryAttempt, Destination

RECENT = datetime.timedelta(hours=24)


def _attempts_of_destination():
    return DeliveryAttempt.objects.filter(destination_id=OuterRef("pk")).order_by()


def _count_since(status: str, since) -> Coalesce:
    counted = (
        _attempts_of_destination()
        .filter(status=status, created__gte=since)
        .values("destination_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def destinations_overview(*, workspace_ids: list[int], since=None) -> QuerySet[Destination]:
    """The workspaces' destinations, each annotated with its attempts since `since` (default: the last 24 hours)
    that succeeded (`delivered_recent`) and failed (`failed_recent`), and its latest attempt's status and time —
    one query, whatever the number of destinations and attempts (each figure an indexed subquery on
    `delivery_destination_idx`). The secret is not loaded."""
    since = since or timezone.now() - RECENT
    latest = _attempts_of_destination().order_by("-created", "-id")
    return (
        Destination.objects.filter(workspace_id__in=workspace_ids)
        .defer("signing_secret")
        .annotate(
            delivered_recent=_count_since(DeliveryStatus.SUCCEEDED, since),
            failed_recent=_count_since(DeliveryStatus.FAILED, since),
            last_attempt_status=Subquery(latest.values("status")[:1]),
            last_attempt_at=Subquery(latest.values("created")[:1]),
        )
        .order_by("label", "id")
    )


def delivery_attempts_recent(
    *, workspace_ids: list[int], destination_id: int | None = None, limit: int = 20
) -> list[DeliveryAttempt]:
    """The latest attempts of the workspaces' destinations (of one, when given), newest first, with the
    destination's label and the event's type and key (one query)."""
    qs = DeliveryAttempt.objects.filter(workspace_id__in=workspace_ids)
    if destination_id is not None:
        qs = qs.filter(destination_id=destination_id)
    return list(
        qs.select_related("destination", "event")
        .only(
            "created",
            "attempt",
            "status",
            "response_status",
            "response_excerpt",
            "error",
            "duration_ms",
            "next_attempt_at",
            "workspace_id",
            "destination__label",
            "destination__url",
            "event__type",
            "event__key",
        )
        .order_by("-created", "-id")[:limit]
    )


def delivery_figures(*, workspace_ids: list[int], since=None) -> dict[str, int]:
    """Attempts of the workspaces since `since` (default: the last 24 hours), by status (one grouped query)."""
    since = since or timezone.now() - RECENT
    rows = (
        DeliveryAttempt.objects.filter(workspace_id__in=workspace_ids, created__gte=since)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    figures = dict.fromkeys(DeliveryStatus.values, 0)
    figures.update(dict(rows))
    return figures
