"""The import job's lifecycle: upload → validate (the preview) → confirm → import; and the sweep.

The admin, the CLI and the API all go through these, so a file imports the same way wherever it comes from.
"""

import hashlib
import time
from datetime import timedelta
from pathlib import PurePath

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from fleet.choices import IMPORT_JOB_TRANSITIONS, AlertSeverity, AlertSubtype, AlertType, ImportJobStatus
from fleet.importing.planner import FleetImportPlan, plan_fleet_import
from fleet.importing.reader import FleetFileError, read_fleet_file
from fleet.importing.writer import apply_fleet_import
from fleet.models import ImportJob
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError

PROGRESS_KEY = "import-job-progress:{}"
# A 100k-row job's preview and errors are megabytes of JSON: written once, never re-read by the lifecycle.
HEAVY_FIELDS = ("row_statuses", "errors", "warnings")


def import_job_progress(job: ImportJob) -> dict:
    """{status, phase, done, total} as fresh as it gets: the cache while a job runs (progress written inside
    the import's transaction is not visible to others), the row otherwise."""
    live = cache.get(PROGRESS_KEY.format(job.pk))
    if live and job.status in (ImportJobStatus.VALIDATING, ImportJobStatus.IMPORTING):
        return {"status": job.status, **live}
    return {"status": job.status, "phase": job.progress_phase, "done": job.progress_done, "total": job.progress_total}


def _reporter(job: ImportJob, phase: str):
    last = {"at": 0.0}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last["at"] < 0.25:
            return
        last["at"] = now
        cache.set(PROGRESS_KEY.format(job.pk), {"phase": phase, "done": done, "total": total}, timeout=3600)

    return report


def _move(job: ImportJob, status: ImportJobStatus, **fields) -> None:
    IMPORT_JOB_TRANSITIONS.check(job.status, status)
    job.status = status
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=["status", *fields, "last_updated"])
    _import_alert(job)


IMPORT_FAILED_CAUSE = "fleet:import_failed"  # one per workspace: the latest failure counts on it


def _import_alert(job: ImportJob) -> None:
    """The import rule: an import that failed (an error or an interrupted worker, not a file with errors, which
    its preview shows) raises the workspace's import alert; a later import that succeeds resolves it."""
    from fleet.services import AlertRaise, alert_raise, alerts_resolve

    if job.status == ImportJobStatus.FAILED:
        alert_raise(
            workspace_id=job.workspace_id,
            alert=AlertRaise(
                cause=IMPORT_FAILED_CAUSE,
                type=AlertType.SOFTWARE_PROCESS,
                subtype=AlertSubtype.IMPORT_FAILED,
                severity=AlertSeverity.WARNING,
                title="A fleet import failed",
                description=f"Import #{job.pk} ({job.original_filename}): {job.status_reason}",
                subject_label=f"Import #{job.pk}: {job.original_filename}"[:200],
                subject_ref=f"import_job:{job.pk}",
            ),
        )
    elif job.status == ImportJobStatus.IMPORTED:
        alerts_resolve(
            workspace_id=job.workspace_id,
            causes=[IMPORT_FAILED_CAUSE],
            reason=f"Import #{job.pk} ({job.original_filename}) succeeded.",
        )


@transaction.atomic
def import_job_create(*, workspace, filename: str, data: bytes, actor, source=AuditSource.ADMIN) -> ImportJob:
    """Store an uploaded fleet file as a new job (nothing is checked or imported yet)."""
    if len(data) > settings.IMPORT_MAX_BYTES:
        raise ApplicationError(f"The file is {len(data):,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,}.")
    filename = filename.replace("\x00", "") or "upload.csv"  # NUL: no file system (nor PostgreSQL) holds one
    job = ImportJob(
        workspace=workspace,
        created_by=actor if getattr(actor, "pk", None) else None,
        source=source,
        original_filename=_shortened(filename, 255),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    # stored under a short form of the name: a file system refuses a name over 255 bytes
    job.file.save(_shortened(PurePath(filename).name, 100), ContentFile(data), save=False)
    job.save()
    return job


def _shortened(name: str, limit: int) -> str:
    """`name` cut to `limit` characters, keeping its extension (the reader tells .xlsx by it)."""
    if len(name) <= limit:
        return name
    suffix = PurePath(name).suffix[:10]
    return name[: limit - len(suffix)] + suffix


def _read(job: ImportJob) -> bytes:
    with job.file.open("rb") as handle:
        return handle.read()


def _plan(job: ImportJob, phase: str) -> tuple[FleetImportPlan | None, dict]:
    """Read and check the job's file. Returns (plan, fields to store); plan is None for an unreadable file."""
    started = time.monotonic()
    try:
        fleet_file = read_fleet_file(_read(job), filename=job.original_filename)
    except FleetFileError as exc:
        return None, {"errors": [{"row": None, "column": "", "value": "", "message": str(exc)}], "error_count": 1}
    parsed = time.monotonic()
    row_count = len(fleet_file.records)  # (planning lets the raw records go)
    plan = plan_fleet_import(workspace=job.workspace, fleet_file=fleet_file, progress=_reporter(job, "checking"))
    checked = time.monotonic()
    fields = {
        "row_count": row_count,
        "encoding": fleet_file.encoding,
        "delimiter": {"\t": "tab"}.get(fleet_file.delimiter, fleet_file.delimiter),
        "counts": plan.counts(),
        "errors": [error.as_dict() for error in plan.errors],
        "error_count": len(plan.errors),
        "warnings": plan.warnings,
        "row_statuses": [status.as_list() for status in plan.rows],
        "timings": {
            **job.timings,
            f"{phase}_read_s": round(parsed - started, 3),
            f"{phase}_check_s": round(checked - parsed, 3),
        },
    }
    return plan, fields


def import_job_validate(*, job: ImportJob) -> FleetImportPlan | None:
    """Check the file and record the preview: every row's status and every error. Writes nothing else."""
    job = ImportJob.objects.select_related("workspace").defer(*HEAVY_FIELDS).get(pk=job.pk)
    _move(job, ImportJobStatus.VALIDATING, progress_phase="checking", progress_done=0, progress_total=0)
    try:
        plan, fields = _plan(job, "validate")
    except Exception as exc:
        _move(job, ImportJobStatus.FAILED, status_reason=f"Checking the file failed: {exc}", finished_at=timezone.now())
        raise
    ok = plan is not None and plan.ok
    _move(
        job,
        ImportJobStatus.VALIDATED if ok else ImportJobStatus.INVALID,
        validated_at=timezone.now(),
        progress_done=fields.get("row_count", 0),
        progress_total=fields.get("row_count", 0),
        **fields,
    )
    cache.delete(PROGRESS_KEY.format(job.pk))
    return plan


def import_job_apply(*, job: ImportJob, actor, plan: FleetImportPlan | None = None) -> ImportJob:
    """Import a validated job: claim it (a second confirm is refused), check the file again against the data
    as it is now, and write everything in one transaction. Audited with the counts.

    `plan`: the plan `import_job_validate` just returned in this same process (CLI, API, one background
    job). It is applied as is instead of checking the file a second time; a conflicting concurrent write is
    still refused by the database's unique constraints, which roll the whole import back. A preview
    confirmed later (the admin) always re-checks."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().select_related("workspace").defer(*HEAVY_FIELDS).get(pk=job.pk)
        if job.status != ImportJobStatus.VALIDATED:
            raise ApplicationError(
                f"Import #{job.pk} is {job.get_status_display().lower()}; only a checked file can be imported."
            )
        _move(
            job,
            ImportJobStatus.IMPORTING,
            confirmed_by=actor if getattr(actor, "pk", None) else None,
            confirmed_at=timezone.now(),
            progress_phase="importing",
            progress_done=0,
        )
    try:
        if plan is not None and plan.ok:
            fields = {"timings": dict(job.timings)}
        else:
            plan, fields = _plan(job, "import")
        if plan is None or not plan.ok:
            _move(
                job,
                ImportJobStatus.INVALID,
                status_reason="The data changed since the preview; see the errors.",
                **fields,
            )
            return job
        started = time.monotonic()
        with transaction.atomic():
            counts = apply_fleet_import(
                plan=plan,
                workspace=job.workspace,
                actor=actor,
                source=job.source,
                label=f"Imported by import #{job.pk}",
                progress=_reporter(job, "importing"),
            )
            fields["timings"]["import_write_s"] = round(time.monotonic() - started, 3)
            _move(job, ImportJobStatus.IMPORTED, finished_at=timezone.now(), progress_done=job.row_count, **fields)
            audit_record(
                actor=actor,
                action=AuditAction.IMPORT_COMPLETED,
                target=job,
                source=job.source,
                changes={"counts": counts},
            )
            committing = time.monotonic()
        # the commit runs the deferred foreign-key checks of every row written: worth seeing on its own
        job.timings = {**fields["timings"], "import_commit_s": round(time.monotonic() - committing, 3)}
        job.save(update_fields=["timings", "last_updated"])
    except Exception as exc:
        job.refresh_from_db()
        if job.status == ImportJobStatus.IMPORTING:
            _move(
                job,
                ImportJobStatus.FAILED,
                status_reason=f"Import failed, nothing was written: {exc}",
                finished_at=timezone.now(),
            )
        raise
    finally:
        cache.delete(PROGRESS_KEY.format(job.pk))
    return job


def import_job_should_run_in_background(job: ImportJob) -> bool:
    return job.size_bytes > settings.IMPORT_SYNC_MAX_BYTES and not settings.CELERY_TASK_ALWAYS_EAGER


def import_job_start_validation(*, job: ImportJob) -> None:
    """Check now for a small file; queue a Celery job (after commit) for a large one."""
    if import_job_should_run_in_background(job):
        from fleet.importing.tasks import import_job_validate_task

        transaction.on_commit(lambda: import_job_validate_task.delay(job.pk))
    else:
        import_job_validate(job=job)


def import_job_confirm(*, job: ImportJob, actor) -> None:
    if job.status != ImportJobStatus.VALIDATED:
        raise ApplicationError(
            f"Import #{job.pk} is {job.get_status_display().lower()}; only a checked file can be imported."
        )
    if import_job_should_run_in_background(job):
        from fleet.importing.tasks import import_job_apply_task

        user_id, api_key_id = _actor_ids(actor)
        transaction.on_commit(lambda: import_job_apply_task.delay(job.pk, user_id, api_key_id))
    else:
        import_job_apply(job=job, actor=actor)


def _actor_ids(actor) -> tuple[int | None, int | None]:
    """Who a background job acts as: a staff user's id, or an API key's (tasks take ids, not objects)."""
    api_key = getattr(actor, "api_key", None)
    if api_key is not None:
        return None, api_key.pk
    return (actor.pk if getattr(actor, "pk", None) else None), None


def import_jobs_sweep(*, now=None) -> int:
    """Remove the files of previews nobody confirmed within IMPORT_PREVIEW_TTL_HOURS (and of finished jobs
    once the TTL has passed); mark unconfirmed ones expired. Returns how many files were removed."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.IMPORT_PREVIEW_TTL_HOURS)
    # A job still checking or importing long after any file could take was interrupted (a worker stopped):
    # its transaction was rolled back, so nothing of it was written.
    interrupted = ImportJob.objects.filter(
        status__in=[ImportJobStatus.VALIDATING, ImportJobStatus.IMPORTING],
        last_updated__lt=now - timedelta(hours=settings.IMPORT_INTERRUPTED_AFTER_HOURS),
    ).defer(*HEAVY_FIELDS)
    for job in interrupted:
        _move(
            job,
            ImportJobStatus.FAILED,
            status_reason="Interrupted (the worker stopped); nothing was written. Upload the file again to retry.",
            finished_at=now,
        )
    removed = 0
    stale = (
        ImportJob.objects.filter(created__lt=cutoff)
        .exclude(file="")
        .exclude(status__in=[ImportJobStatus.VALIDATING, ImportJobStatus.IMPORTING])
    )
    for job in stale.iterator():
        job.file.delete(save=False)
        job.file = ""
        fields = ["file", "last_updated"]
        if job.status in (
            ImportJobStatus.UPLOADED,
            ImportJobStatus.VALIDATED,
            ImportJobStatus.INVALID,
            ImportJobStatus.FAILED,
        ):
            job.status = ImportJobStatus.EXPIRED
            fields.append("status")
        job.save(update_fields=fields)
        removed += 1
    return removed


def import_job_run(*, job: ImportJob, actor, dry_run: bool = False) -> ImportJob:
    """Check and (unless `dry_run`) import a job in one process, checking the file once: the CLI's and the
    API's path. A dry run stays `validated`, to be confirmed later (or swept)."""
    plan = import_job_validate(job=job)
    job.refresh_from_db(fields=["status"])
    if job.status == ImportJobStatus.VALIDATED and not dry_run:
        job = import_job_apply(job=job, actor=actor, plan=plan)
    return job


def import_job_start(*, job: ImportJob, actor, dry_run: bool = False) -> None:
    """`import_job_run` now for a small file, or as a Celery job after commit for a large one."""
    if not import_job_should_run_in_background(job):
        import_job_run(job=job, actor=actor, dry_run=dry_run)
        return
    from fleet.importing.tasks import import_job_run_task

    user_id, api_key_id = _actor_ids(actor)
    transaction.on_commit(lambda: import_job_run_task.delay(job.pk, user_id, api_key_id, dry_run))
