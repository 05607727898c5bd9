from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkspaceKind(models.TextChoices):
    PRODUCTION = "production", _("Production")
    SANDBOX = "sandbox", _("Sandbox")


class Role(models.TextChoices):
    """The five staff roles of docs/domain.md. Each is a Django group of the same label (seeded by a migration)."""

    OPS = "ops", _("Ops")
    CUSTOMER_SUPPORT = "customer_support", _("Customer Support")
    ENGINEERING = "engineering", _("Engineering")
    PROGRAM_LEAD = "program_lead", _("Program Lead")
    ADMIN = "admin", _("Admin")


class AuditSource(models.TextChoices):
    ADMIN = "admin", _("Admin")
    SERVICE = "service", _("Service")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    TASK = "task", _("Background task")
    COMMAND = "command", _("Management command")


class AuditAction(models.TextChoices):
    """What an audit row records. Codes are `<object>.<verb>`; grouped by app as in docs/domain.md."""

    # tenancy
    WORKSPACE_CREATED = "workspace.created", _("Workspace created")
    MEMBERSHIP_GRANTED = "membership.granted", _("Membership granted")
    MEMBERSHIP_REVOKED = "membership.revoked", _("Membership revoked")
    # generic admin edits (the changed fields are in `changes`)
    OBJECT_CREATED = "object.created", _("Created")
    OBJECT_CHANGED = "object.changed", _("Changed")
    OBJECT_DELETED = "object.deleted", _("Deleted")
    # programs
    PROGRAM_CREATED = "program.created", _("Program created")
    PROGRAM_PHASE_CHANGED = "program.phase_changed", _("Program phase changed")
    PROGRAM_PRODUCTION_DISPATCH_CHANGED = (
        "program.production_dispatch_changed",
        _("Program production dispatch changed"),
    )
    PROGRAM_CRITERION_SIGNED_OFF = "program.criterion_signed_off", _("Launch criterion signed off")
    PROGRAM_CRITERION_REVOKED = "program.criterion_revoked", _("Launch criterion sign-off revoked")
    EVENT_STRATEGY_VERSIONED = "event_strategy.versioned", _("Event strategy version created")
    ENROLLMENT_SUBMITTED = "enrollment.submitted", _("Enrollment submitted")
    ENROLLMENT_APPROVED = "enrollment.approved", _("Enrollment approved")
    ENROLLMENT_REJECTED = "enrollment.rejected", _("Enrollment rejected")
    ENROLLMENT_UNENROLLED = "enrollment.unenrolled", _("Unenrolled")
    # fleet
    CONTACT_CREATED = "customer.created", _("Contact created")
    CONTACT_UPDATED = "customer.updated", _("Contact updated")
    SITE_CREATED = "site.created", _("Site created")
    SITE_UPDATED = "site.updated", _("Site updated")
    DEVICE_REGISTERED = "device.registered", _("Device registered")
    DEVICE_UPDATED = "device.updated", _("Device updated")
    DEVICE_STATE_CHANGED = "device.state_changed", _("Device state changed")
    IMPORT_COMPLETED = "import.completed", _("Fleet file imported")
    ALERT_RAISED = "alert.raised", _("Alert raised")
    ALERT_STATUS_CHANGED = "alert.status_changed", _("Alert status changed")
    ALERT_SNOOZED = "alert.snoozed", _("Alert snoozed or woken")
    # integrations
    INTEGRATION_CHANGED = "integration.changed", _("Integration changed")
    # dispatch
    DISPATCH_EVENT_CREATED = "program_event.created", _("Dispatch event created")
    DISPATCH_EVENT_STATUS_CHANGED = "program_event.status_changed", _("Dispatch event status changed")
    DISPATCH_ACTION_STARTED = "program_event.action_started", _("Devices selected and commanded")
    DISPATCH_ACTION_RESTORING = "program_event.action_restoring", _("Devices being restored")
    PARTICIPATION_OPTED_OUT = "participation.opted_out", _("Opted out of an event")
    COMMAND_CREATED = "command.created", _("Command created")
    COMMAND_STATUS_CHANGED = "command.status_changed", _("Command status changed")
