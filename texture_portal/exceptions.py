"""The portal's error hierarchy. Services raise these; views, admin and commands turn them into messages."""


class ApplicationError(Exception):
    """A domain rule refused the operation. `message` is written for the staff member who will read it."""

    def __init__(self, message: str, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidTransition(ApplicationError):
    """A status or state change that the object's state machine does not allow."""


class WorkspaceMismatch(ApplicationError):
    """Two objects of different workspaces were about to be linked."""


class AccessDenied(ApplicationError):
    """The acting user has no right to do this in this workspace."""


class Conflict(ApplicationError):
    """The object's current state or links refuse the operation (a contact with sites deleted, an idempotency
    key reused for another request)."""
