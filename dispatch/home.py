"""What dispatch shows on the Ops home (registered with texture_portal.home in DispatchConfig.ready): the events
in progress with their live participation, and the commands failed lately.

Every figure links to the rows it counts (the participation and command lists, filtered by the API's filter
names, which select the rows the counts count), and each panel costs a constant few queries.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dispatch.choices import CommandStatus, ParticipationStatus
from dispatch.selectors import commands_failed_since, events_in_progress, events_participation_counts
from fleet.home import changelist_url
from texture_portal.choices import Role
from texture_portal.home import HomeLink, HomePanel, home_link_register, home_panel_register
from texture_portal.timezones import local_window_label

EVENTS_LISTED = 10
FAILED_LISTED = 5
FAILED_WITHIN = timedelta(hours=24)


def participation_url(workspace_ids: list[int], event_id: int, **params) -> str:
    return changelist_url("admin:dispatch_participation_changelist", workspace_ids, event__id__exact=event_id, **params)


def events_in_progress_panel(request, workspace_ids: list[int]) -> dict:
    events, total = events_in_progress(workspace_ids=workspace_ids, limit=EVENTS_LISTED)
    counts = events_participation_counts(workspace_ids=workspace_ids, event_ids=[e.pk for e in events])
    now = timezone.now()
    rows = []
    for event in events:
        c = counts[event.pk]
        elapsed = (now - event.starts_at).total_seconds()
        length = (event.ends_at - event.starts_at).total_seconds()
        rows.append(
            {
                "event": event,
                "window": local_window_label(event.starts_at, event.ends_at, event.program.zone),
                "elapsed_share": max(0, min(100, round(100 * elapsed / length))) if length > 0 else 100,
                "timeline_url": reverse("admin:dispatch_dispatchevent_timeline", args=[event.pk]),
                "figures": [
                    {
                        "key": "targeted",
                        "label": _("targeted"),
                        "count": c["targeted"],
                        "url": participation_url(workspace_ids, event.pk),
                    },
                    {
                        "key": "commanded",
                        "label": _("commanded"),
                        "count": c["commanded"],
                        "url": participation_url(workspace_ids, event.pk, commanded="true"),
                    },
                    {
                        "key": "confirmed",
                        "label": _("confirmed"),
                        "count": c["confirmed"],
                        "url": participation_url(workspace_ids, event.pk, confirmed="true"),
                    },
                    {
                        "key": "failed",
                        "label": _("failed"),
                        "count": c["failed"],
                        "url": participation_url(
                            workspace_ids,
                            event.pk,
                            status=[ParticipationStatus.FAILED, ParticipationStatus.RESTORE_FAILED],
                        ),
                        "bad": c["failed"] > 0,
                    },
                    {
                        "key": "not_responding",
                        "label": _("not responding"),
                        "count": c["not_responding"],
                        "url": participation_url(workspace_ids, event.pk, status=ParticipationStatus.NOT_RESPONDING),
                        "bad": c["not_responding"] > 0,
                    },
                ],
                "confirmed_share": round(100 * c["confirmed"] / c["commanded"]) if c["commanded"] else None,
            }
        )
    return {
        "rows": rows,
        "total": total,
        "more": total - len(rows),
        "all_url": changelist_url(
            "admin:dispatch_dispatchevent_changelist", workspace_ids, status__exact="in_progress"
        ),
    }


def failed_commands_panel(request, workspace_ids: list[int]) -> dict:
    since = (timezone.now() - FAILED_WITHIN).replace(microsecond=0)
    count, latest = commands_failed_since(workspace_ids=workspace_ids, since=since, limit=FAILED_LISTED)
    return {
        "count": count,
        "since": since,
        "url": changelist_url(
            "admin:dispatch_command_changelist",
            workspace_ids,
            status=CommandStatus.FAILED,
            completedAfter=since.isoformat(),
        ),
        "commands": latest,
        "now": timezone.now(),
    }


def register() -> None:
    home_panel_register(
        HomePanel(
            role=Role.OPS,
            key="events-in-progress",
            title=_("Events in progress"),
            template="admin/dispatch/home/events_in_progress.html",
            context=events_in_progress_panel,
            order=5,
            permission="dispatch.view_dispatchevent",
            wide=True,
        )
    )
    home_panel_register(
        HomePanel(
            role=Role.OPS,
            key="failed-commands",
            title=_("Failed commands (24 h)"),
            template="admin/dispatch/home/failed_commands.html",
            context=failed_commands_panel,
            order=40,
            permission="dispatch.view_command",
        )
    )
    for order, (title, url_name, icon, permission) in enumerate(
        [
            (_("Dispatch events"), "admin:dispatch_dispatchevent_changelist", "bolt", "dispatch.view_dispatchevent"),
            (_("Commands"), "admin:dispatch_command_changelist", "terminal", "dispatch.view_command"),
            (_("Participation"), "admin:dispatch_participation_changelist", "groups", "dispatch.view_participation"),
        ]
    ):
        home_link_register(
            HomeLink(role=Role.OPS, title=title, url_name=url_name, icon=icon, permission=permission, order=40 + order)
        )
