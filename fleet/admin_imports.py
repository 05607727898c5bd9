"""The fleet import in the admin: upload → preview (every row new / update / unchanged / error, every
error as "row N, column: value — why") → confirm. Large files are checked and imported by Celery while the
page shows a progress bar; every upload is an ImportJob staff can open later. Also the CSV export."""

import csv

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from fleet.choices import ImportJobStatus
from fleet.importing.columns import OPTIONAL, REQUIRED
from fleet.importing.services import (
    import_job_confirm,
    import_job_create,
    import_job_progress,
    import_job_start_validation,
)
from fleet.models import Contact, Device, ImportJob
from fleet.resources import export_fleet_csv
from texture_portal.admin_base import (
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    scope_to_user,
    scoped_object_or_none,
)
from texture_portal.auth import workspaces_where
from texture_portal.choices import AuditSource
from texture_portal.exceptions import ApplicationError

PREVIEW_ROWS = 200
RUNNING = (ImportJobStatus.VALIDATING, ImportJobStatus.IMPORTING)


class UploadForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=None, label=_("workspace"))
    file = forms.FileField(label=_("fleet file"), help_text=_("CSV (any common delimiter or encoding) or .xlsx"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:  # refused before anything is read into memory
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,}."
            )
        return upload

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces
        if workspaces.count() == 1:
            self.fields["workspace"].initial = workspaces.first()


class FleetImportExportMixin:
    """Adds "Import fleet file" and "Export CSV" to a changelist (Devices, Contacts)."""

    change_list_template = "admin/fleet/change_list_import_export.html"

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_export"
        extra = [path("export/", self.admin_site.admin_view(self.export_view), name=name)]
        return extra + super().get_urls()

    def export_view(self, request):
        """The changelist's current selection (filters and search applied) as a fleet CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
            queryset = changelist.get_queryset(request)
        except IncorrectLookupParameters:
            messages.error(request, "The export's filters are not the list's: open the list, filter, then export.")
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        if queryset.model is Contact:  # the contacts' devices, one row each
            queryset = scope_to_user(Device.objects.filter(contact__in=queryset), request.user)
        response = HttpResponse(export_fleet_csv(queryset), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="fleet-{stamp}.csv"'
        return response


@admin.register(ImportJob)
class ImportJobAdmin(WorkspaceScopedAdmin):
    list_display = [
        "__str__",
        "status",
        "row_count",
        "rows_new",
        "rows_updated",
        "rows_unchanged",
        "error_count",
        "created_by",
        "created",
        "workspace",
    ]
    list_select_related = ["created_by", "workspace__organization"]
    list_filter = ["status", "source", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["original_filename", "=sha256"]

    @admin.display(description=_("new"))
    def rows_new(self, job):
        return (job.counts or {}).get("new", "—")

    @admin.display(description=_("updated"))
    def rows_updated(self, job):
        return (job.counts or {}).get("updated", "—")

    @admin.display(description=_("unchanged"))
    def rows_unchanged(self, job):
        return (job.counts or {}).get("unchanged", "—")

    def has_delete_permission(self, request, obj=None):
        return False  # the record of who imported what stays

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/status/", wrap(self.status_view), name="fleet_importjob_status"),
            path("<int:pk>/confirm/", wrap(self.confirm_view), name="fleet_importjob_confirm"),
            path("<int:pk>/errors.csv", wrap(self.errors_csv_view), name="fleet_importjob_errors"),
            *super().get_urls(),
        ]

    def _job(self, request, pk) -> ImportJob:
        job = scoped_object_or_none(
            self.get_queryset(request).select_related("workspace", "created_by"), request.user, pk
        )
        if job is None:
            raise Http404("No such import in your workspaces.")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    # -- upload -----------------------------------------------------------------------------------------
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        workspaces = workspaces_where(request.user, "fleet.add_importjob").select_related("organization")
        form = UploadForm(request.POST or None, request.FILES or None, workspaces=workspaces)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = import_job_create(
                    workspace=form.cleaned_data["workspace"],
                    filename=upload.name,
                    data=upload.read(),
                    actor=request.user,
                    source=AuditSource.ADMIN,
                )
                import_job_start_validation(job=job)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                return HttpResponseRedirect(reverse("admin:fleet_importjob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import fleet file"),
            "opts": self.opts,
            "form": form,
            "required_columns": REQUIRED,
            "optional_columns": OPTIONAL,
            "recent_jobs": self.get_queryset(request).select_related("created_by")[:5],
        }
        return TemplateResponse(request, "admin/fleet/importjob/upload.html", context)

    # -- the job page: progress, preview, errors, confirm ----------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job(request, object_id)
        show = request.GET.get("show", "")
        statuses = job.row_statuses or []
        shown = [row for row in statuses if not show or row[1] == show][:PREVIEW_ROWS]
        context = {
            **self.admin_site.each_context(request),
            "title": str(job),
            "opts": self.opts,
            "original": job,
            "job": job,
            "progress": import_job_progress(job),
            "running": job.status in RUNNING,
            "can_confirm": job.status == ImportJobStatus.VALIDATED
            and request.user.has_perm("fleet.change_importjob", job),
            "errors": (job.errors or [])[:500],
            "more_errors": max(job.error_count - 500, 0),
            "preview_rows": shown,
            "preview_limit": PREVIEW_ROWS,
            "show": show,
            "status_choices": ["new", "update", "unchanged", "error"],
            "counts": job.counts or {},
        }
        return TemplateResponse(request, "admin/fleet/importjob/job.html", context)

    def status_view(self, request, pk):
        job = self._job(request, pk)
        return JsonResponse({"id": job.pk, **import_job_progress(job), "statusLabel": job.get_status_display()})

    def confirm_view(self, request, pk):
        return require_POST(self._confirm_view)(request, pk)

    def _confirm_view(self, request, pk):
        job = self._job(request, pk)
        if not request.user.has_perm("fleet.change_importjob", job):
            raise PermissionDenied
        try:
            import_job_confirm(job=job, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            job.refresh_from_db()
            if job.status == ImportJobStatus.IMPORTED:
                counts = job.counts
                messages.success(
                    request,
                    f"Imported: {counts.get('new', 0)} new, {counts.get('updated', 0)} updated, "
                    f"{counts.get('unchanged', 0)} unchanged.",
                )
            elif job.status == ImportJobStatus.INVALID:
                messages.error(request, "The data changed since the preview; nothing was imported. See the errors.")
        return HttpResponseRedirect(reverse("admin:fleet_importjob_change", args=[job.pk]))

    def errors_csv_view(self, request, pk):
        job = self._job(request, pk)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        writer = csv.writer(response)
        writer.writerow(["row", "column", "value", "message"])
        for error in job.errors or []:
            writer.writerow(
                [error.get("row") or "", error.get("column", ""), error.get("value", ""), error.get("message", "")]
            )
        return response
