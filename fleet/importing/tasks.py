"""Background imports for files above IMPORT_SYNC_MAX_BYTES, and the sweep of abandoned previews."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def import_job_validate_task(job_id: int) -> None:
    from fleet.importing.services import import_job_validate
    from fleet.models import ImportJob

    import_job_validate(job=ImportJob.objects.get(pk=job_id))


def _actor(user_id: int | None, api_key_id: int | None):
    if api_key_id:
        from texture_portal.api.authentication import ApiKeyPrincipal
        from texture_portal.api_keys import ApiKey

        return ApiKeyPrincipal(ApiKey.objects.get(pk=api_key_id))
    if user_id:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(pk=user_id).first()
    return None


@shared_task(acks_late=True, ignore_result=True)
def import_job_apply_task(job_id: int, user_id: int | None, api_key_id: int | None = None) -> None:
    from fleet.importing.services import import_job_apply
    from fleet.models import ImportJob

    import_job_apply(job=ImportJob.objects.get(pk=job_id), actor=_actor(user_id, api_key_id))


@shared_task(ignore_result=True)
def import_jobs_sweep_task() -> int:
    from fleet.importing.services import import_jobs_sweep

    return import_jobs_sweep()


@shared_task(acks_late=True, ignore_result=True)
def import_job_run_task(job_id: int, user_id: int | None, api_key_id: int | None, dry_run: bool) -> None:
    """Check and import in one pass (the API's and CLI's path) for a file too large for the request."""
    from fleet.importing.services import import_job_run
    from fleet.models import ImportJob

    actor = _actor(user_id, api_key_id)
    import_job_run(job=ImportJob.objects.get(pk=job_id), actor=actor, dry_run=dry_run)
