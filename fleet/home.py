"""What the fleet shows on the Ops home (registered with texture_portal.home in FleetConfig.ready): devices by
state and manufacturer, the devices offline and since when, and how fresh the live devices' telemetry is.

Every figure links to the device list filtered to the devices it counts (the same conditions:
`fleet.selectors.soc_band_q` / `last_seen_q` are what the list's filters apply), and each panel costs one or two
aggregate queries whatever the fleet's size.
"""

from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from fleet.choices import DeviceState, LastSeen
from fleet.selectors import devices_offline, fleet_state_grid, fleet_telemetry_freshness
from texture_portal.choices import Role
from texture_portal.home import HomeLink, HomePanel, home_link_register, home_panel_register

OFFLINE_LISTED = 10


def changelist_url(url_name: str, workspace_ids: list[int], **params) -> str:
    """A changelist filtered by `params` and to the panel's workspaces (the user may see others, which the
    panel did not count)."""
    scope = (
        {"workspace__id__exact": workspace_ids[0]}
        if len(workspace_ids) == 1
        else {"workspace__id__in": ",".join(str(pk) for pk in sorted(workspace_ids))}
    )
    query = {**params, **scope}
    return f"{reverse(url_name)}?{urlencode(query, doseq=True)}"


def devices_url(workspace_ids: list[int], **params) -> str:
    return changelist_url("admin:fleet_device_changelist", workspace_ids, **params)


def state_grid_panel(request, workspace_ids: list[int]) -> dict:
    grid = fleet_state_grid(workspace_ids=workspace_ids)
    rows = []
    for maker in grid["manufacturers"]:
        cells = []
        for state, _label in grid["states"]:
            n = grid["cells"].get((state, maker["id"]), 0)
            url = devices_url(workspace_ids, state__exact=state, manufacturer__id__exact=maker["id"])
            cells.append({"state": state, "count": n, "url": url})
        total = grid["by_manufacturer"][maker["id"]]
        rows.append(
            {
                "manufacturer": maker,
                "cells": cells,
                "total": total,
                "url": devices_url(workspace_ids, manufacturer__id__exact=maker["id"]),
            }
        )
    totals = [
        {
            "state": state,
            "label": label,
            "count": grid["by_state"][state],
            "url": devices_url(workspace_ids, state__exact=state),
        }
        for state, label in grid["states"]
    ]
    return {"rows": rows, "totals": totals, "total": grid["total"], "all_url": devices_url(workspace_ids)}


def offline_panel(request, workspace_ids: list[int]) -> dict:
    count, devices = devices_offline(workspace_ids=workspace_ids, limit=OFFLINE_LISTED)
    return {
        "count": count,
        "url": devices_url(workspace_ids, state__exact=DeviceState.OFFLINE),
        "devices": devices,
        "listed": OFFLINE_LISTED,
        "now": timezone.now(),
    }


def freshness_panel(request, workspace_ids: list[int]) -> dict:
    counts = fleet_telemetry_freshness(workspace_ids=workspace_ids, now=timezone.now())
    live = counts["live"]

    def share(n: int) -> int | None:
        return round(100 * n / live) if live else None

    bands = [
        {
            "band": band,
            "label": label,
            "count": counts[f"seen_{band}"],
            "share": share(counts[f"seen_{band}"]),
            "url": devices_url(workspace_ids, state__exact=DeviceState.ON_WORKSPACE, lastSeen=band),
            "bad": band in (LastSeen.OLDER, LastSeen.NEVER) and counts[f"seen_{band}"] > 0,
        }
        for band, label in LastSeen.choices
    ]
    # the bar: each device in one segment (the cumulative bands made disjoint)
    within = [counts["seen_15m"], counts["seen_1h"], counts["seen_24h"]]
    segments = [
        ("fresh", _("≤ 15 min"), within[0]),
        ("recent", _("15 min – 1 h"), within[1] - within[0]),
        ("stale", _("1 h – 24 h"), within[2] - within[1]),
        ("old", _("> 24 h"), counts["seen_older"]),
        ("never", _("never"), counts["seen_never"]),
    ]
    return {
        "live": live,
        "live_url": devices_url(workspace_ids, state__exact=DeviceState.ON_WORKSPACE),
        "bands": bands,
        "segments": [
            {"key": key, "label": label, "count": n, "width": 100 * n / live}
            for key, label, n in segments
            if live and n
        ],
    }


ALERTS_LISTED = 8


def alerts_panel(request, workspace_ids: list[int]) -> dict:
    """The alerts staff have yet to look at (open, not snoozed): the count by severity and the latest few,
    each a link to the alert; two queries."""
    from django.db.models import Count

    from fleet.models import Alert
    from fleet.selectors import alerts_needing_attention_q

    needing = Alert.objects.filter(alerts_needing_attention_q(), workspace_id__in=workspace_ids)
    by_severity = dict(needing.values_list("severity").annotate(n=Count("pk")).order_by())
    latest = list(
        needing.order_by("-created").only(
            "pk", "title", "severity", "created", "device_serial_number", "subject_label", "workspace_id"
        )[:ALERTS_LISTED]
    )
    return {
        "total": sum(by_severity.values()),
        "by_severity": [
            {
                "severity": sev,
                "count": by_severity.get(sev, 0),
                "url": changelist_url(
                    "admin:fleet_alert_changelist", workspace_ids, attention="needed", severity__exact=sev
                ),
            }
            for sev in ("CRITICAL", "WARNING", "INFO")
        ],
        "latest": latest,
        "all_url": changelist_url("admin:fleet_alert_changelist", workspace_ids, attention="needed"),
    }


def register() -> None:
    for role, order in ((Role.OPS, 5), (Role.CUSTOMER_SUPPORT, 50)):
        home_panel_register(
            HomePanel(
                role=role,
                key="open-alerts",
                title=_("Open alerts"),
                template="admin/fleet/home/alerts.html",
                context=alerts_panel,
                order=order,
                permission="fleet.view_alert",
            )
        )
    home_link_register(
        HomeLink(
            role=Role.OPS,
            title=_("Alerts"),
            url_name="admin:fleet_alert_changelist",
            icon="notifications",
            permission="fleet.view_alert",
            order=5,
        )
    )
    home_panel_register(
        HomePanel(
            role=Role.OPS,
            key="fleet-states",
            title=_("Devices by state and manufacturer"),
            template="admin/fleet/home/state_grid.html",
            context=state_grid_panel,
            order=10,
            permission="fleet.view_device",
            wide=True,
        )
    )
    home_panel_register(
        HomePanel(
            role=Role.OPS,
            key="telemetry-freshness",
            title=_("Telemetry freshness"),
            template="admin/fleet/home/freshness.html",
            context=freshness_panel,
            order=20,
            permission="fleet.view_device",
        )
    )
    home_panel_register(
        HomePanel(
            role=Role.OPS,
            key="offline",
            title=_("Offline now"),
            template="admin/fleet/home/offline.html",
            context=offline_panel,
            order=30,
            permission="fleet.view_device",
        )
    )
    for order, (title, url_name, icon, permission) in enumerate(
        [
            (_("Devices"), "admin:fleet_device_changelist", "devices", "fleet.view_device"),
            (
                _("Device state history"),
                "admin:fleet_devicestatechange_changelist",
                "history",
                "fleet.view_devicestatechange",
            ),
            (_("Fleet imports"), "admin:fleet_importjob_changelist", "upload_file", "fleet.view_importjob"),
        ]
    ):
        home_link_register(
            HomeLink(role=Role.OPS, title=title, url_name=url_name, icon=icon, permission=permission, order=10 + order)
        )
