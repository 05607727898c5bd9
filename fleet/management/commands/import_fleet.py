"""`python manage.py import_fleet PATH [--workspace SLUG] [--dry-run]`: the same import job as the admin's."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from fleet.choices import ImportJobStatus
from fleet.importing.services import import_job_create, import_job_run
from texture_portal.choices import AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.models import Workspace


class Command(BaseCommand):
    help = "Import a fleet CSV or .xlsx (one row per device). Exit 0 on success, 1 on any error."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV or .xlsx file in the fleet column format (docs/domain.md)")
        parser.add_argument("--workspace", help="workspace slug (may be left out when only one workspace exists)")
        parser.add_argument("--dry-run", action="store_true", help="check the file and report; write nothing")
        parser.add_argument("--user", help="username recorded as the importer in the audit log")

    def handle(self, *args, path, workspace=None, dry_run=False, user=None, **options):
        file_path = Path(path)
        if not file_path.is_file():
            raise CommandError(f"No such file: {file_path}")
        target = self._workspace(workspace)
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user “{user}”.")
        try:
            job = import_job_create(
                workspace=target,
                filename=file_path.name,
                data=file_path.read_bytes(),
                actor=actor,
                source=AuditSource.COMMAND,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        import_job_run(job=job, actor=actor, dry_run=dry_run)
        job.refresh_from_db()

        for warning in job.warnings:
            self.stderr.write(f"warning: {warning}")
        for error in job.errors:
            where = f'row {error["row"]}, {error["column"]}: "{error["value"]}" — ' if error.get("row") else ""
            self.stderr.write(f"error: {where}{error['message']}")
        counts = job.counts or {}
        verb = (
            "would import" if dry_run and job.status == ImportJobStatus.VALIDATED else job.get_status_display().lower()
        )
        self.stdout.write(
            f"import #{job.pk} ({verb}): {counts.get('new', 0)} new, {counts.get('updated', 0)} updated, "
            f"{counts.get('unchanged', 0)} unchanged, {job.error_count} errors"
        )
        if job.error_count or job.status not in (ImportJobStatus.IMPORTED, ImportJobStatus.VALIDATED):
            raise SystemExit(1)

    def _workspace(self, slug: str | None) -> Workspace:
        if slug:
            workspace = Workspace.objects.filter(slug=slug).first()
            if workspace is None:
                known = ", ".join(Workspace.objects.order_by("slug").values_list("slug", flat=True)[:10])
                raise CommandError(f"No workspace “{slug}” (workspaces: {known}).")
            return workspace
        workspaces = list(Workspace.objects.all()[:2])
        if len(workspaces) != 1:
            known = ", ".join(Workspace.objects.order_by("slug").values_list("slug", flat=True)[:10])
            raise CommandError(f"Several workspaces exist; choose one with --workspace ({known}).")
        return workspaces[0]
