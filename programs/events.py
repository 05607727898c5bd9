"""The platform events programs own (enrollment.*) and the `data` each carries, in the API's camelCase.
Registered with the core events service in `ProgramsConfig.ready()`."""

from django.db import models


class EnrollmentEventType(models.TextChoices):
    ENROLLMENT_SUBMITTED = "enrollment.submitted", "enrollment.submitted"
    ENROLLMENT_APPROVED = "enrollment.approved", "enrollment.approved"
    ENROLLMENT_REJECTED = "enrollment.rejected", "enrollment.rejected"
    ENROLLMENT_UNENROLLED = "enrollment.unenrolled", "enrollment.unenrolled"


def enrollment_data(enrollment) -> dict:
    return {
        "id": enrollment.pk,
        "workspaceId": enrollment.workspace_id,
        "deviceId": enrollment.device_id,
        "programId": enrollment.program_id,
        "programSlug": enrollment.program.slug,
        "status": enrollment.status,
        "reason": enrollment.reason,
    }
