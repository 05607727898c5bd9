"""What each of the five roles may do, as Django model permissions.

The roles are Django groups (labels as in docs/domain.md). A user's role is held per workspace through
`WorkspaceMembership`, and `texture_portal.auth.WorkspaceRoleBackend` grants the group's permissions only
inside that workspace. `sync_role_groups` is called by data migrations; add one calling it again whenever a
model is added.
"""

from texture_portal.choices import Role

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)

# Every tenant and catalog model, by app: the role table below refers to these.
PORTAL_MODELS = {
    "texture_portal": ["workspace", "workspacemembership", "auditlogentry", "apikey", "idempotencykey"],
    "programs": ["program", "eventstrategy", "enrollment", "programhealthday"],
    "fleet": [
        "manufacturer",
        "contact",
        "site",
        "device",
        "devicestatechange",
        "devicetag",
        "telemetryreading",
        "importjob",
        "alert",
        "alertnotificationsetting",
    ],
    "events": ["platformevent", "destination", "deliveryattempt"],
    "integrations": ["workspaceintegration", "integrationrun", "customerconnection", "connectsession"],
    "dispatch": [
        "dispatchevent",
        "dispatchaction",
        "dispatchschedule",
        "participation",
        "command",
        "batchcommand",
        "eventreport",
        "eventreportdevice",
    ],
}


def _perms(app: str, models_: list[str], actions: tuple[str, ...]) -> set[str]:
    return {f"{app}.{action}_{model}" for model in models_ for action in actions}


def _view_everything() -> set[str]:
    perms: set[str] = set()
    for app, models_ in PORTAL_MODELS.items():
        perms |= _perms(app, models_, (VIEW,))
    # Memberships are the Admin's business; API keys are Engineering's and the Admin's.
    return perms - {"texture_portal.view_workspacemembership", "texture_portal.view_apikey"}


# Written by the portal itself (catalog migration, services): even a workspace Admin only reads these.
READ_ONLY_FOR_ADMINS = (
    "manufacturer",
    "participation",
    "workspace",
    "auditlogentry",
    "idempotencykey",  # the API's stored answers
    "platformevent",
    "deliveryattempt",
    "integrationrun",
    "customerconnection",  # written by Connect sessions and the OEMs' answers (tokens never edited by hand)
    "programhealthday",
    "eventreport",  # compiled by the portal (recompiled by whoever may change the event)
    "eventreportdevice",
)

ROLE_PERMISSIONS: dict[str, set[str]] = {
    # Fleet, alerts and dispatch monitoring: runs events and keeps devices in order.
    Role.OPS: _view_everything()
    | _perms("fleet", ["device", "devicetag"], (ADD, CHANGE))
    | _perms("fleet", ["importjob"], (ADD, CHANGE))
    | _perms("fleet", ["alert"], (CHANGE,))  # acknowledge, ignore, resolve, snooze
    | _perms("fleet", ["alertnotificationsetting"], (ADD, CHANGE))
    | _perms(
        "dispatch", ["dispatchevent", "dispatchaction", "dispatchschedule", "command", "batchcommand"], (ADD, CHANGE)
    )
    | _perms("dispatch", ["participation"], (CHANGE,)),  # opt a device out of an event
    # Looks customers up by account number and reads device status; keeps contact details current.
    Role.CUSTOMER_SUPPORT: _perms(
        "fleet", ["contact", "site", "device", "devicestatechange", "telemetryreading", "alert"], (VIEW,)
    )
    | _perms("programs", ["program", "enrollment"], (VIEW,))
    | _perms("dispatch", ["dispatchevent", "participation", "command", "eventreport", "eventreportdevice"], (VIEW,))
    | _perms("fleet", ["manufacturer"], (VIEW,))
    | _perms("texture_portal", ["workspace"], (VIEW,))
    | _perms("fleet", ["contact", "site"], (CHANGE,))
    # sends a customer a Connect link and sees how their connections stand
    | _perms("integrations", ["customerconnection", "connectsession"], (VIEW,))
    | _perms("integrations", ["connectsession"], (ADD,)),
    # API keys, webhooks, integrations.
    Role.ENGINEERING: _view_everything()
    | _perms("integrations", ["workspaceintegration"], ALL)
    | _perms("integrations", ["connectsession"], (ADD,))
    | _perms("events", ["destination"], ALL)
    | _perms("texture_portal", ["apikey"], (VIEW, ADD, CHANGE)),
    # Programs, strategies, enrollments, launch sign-off, events.
    Role.PROGRAM_LEAD: _view_everything()
    | _perms("programs", ["program", "eventstrategy", "enrollment"], (ADD, CHANGE))
    | _perms("fleet", ["importjob"], (ADD, CHANGE))
    | _perms("dispatch", ["dispatchevent", "dispatchaction", "dispatchschedule"], (ADD, CHANGE))
    | _perms("dispatch", ["participation"], (CHANGE,)),
    # Everything inside the workspace, including who is a member.
    Role.ADMIN: set().union(
        *(
            _perms(app, [m for m in models_ if m not in READ_ONLY_FOR_ADMINS], ALL)
            for app, models_ in PORTAL_MODELS.items()
        )
    )
    | _perms("fleet", ["manufacturer"], (VIEW,))
    | _perms("dispatch", ["participation"], (VIEW, CHANGE))
    | _perms("texture_portal", ["workspace"], (VIEW, CHANGE))
    | _perms("texture_portal", ["auditlogentry"], (VIEW,))
    | _perms("integrations", ["integrationrun", "customerconnection"], (VIEW,))
    | _perms("events", ["platformevent", "deliveryattempt"], (VIEW,))
    | _perms("dispatch", ["eventreport", "eventreportdevice"], (VIEW,))
    | _perms("programs", ["programhealthday"], (VIEW,)),
}


def sync_role_groups(apps, schema_editor=None) -> None:
    """Create the five groups and set exactly the permissions of ROLE_PERMISSIONS (idempotent)."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; create them now so groups can hold them.
    for app_config in apps.get_app_configs():
        # A historical app registry has no models module, which create_permissions takes for "no models";
        # the real registry (tests re-seeding after a flush) keeps its own, untouched.
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    index = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in Permission.objects.values_list("pk", "content_type__app_label", "codename")
    }

    def model_exists(perm: str) -> bool:
        app_label, codename = perm.split(".")
        try:
            apps.get_model(app_label, codename.split("_", 1)[1])
        except LookupError:
            return False
        return True

    for role in Role:
        # A model added by a later migration is not in this historical state yet; the migration that adds it
        # calls this again. A permission of a model that does exist must exist too (catches typos).
        wanted = {p for p in ROLE_PERMISSIONS[role] if model_exists(p)}
        missing = sorted(p for p in wanted if p not in index)
        if missing:
            raise LookupError(f"Role {role.label}: unknown permissions {missing}")
        group, _ = Group.objects.get_or_create(name=str(role.label))
        group.permissions.set([index[p] for p in wanted])
