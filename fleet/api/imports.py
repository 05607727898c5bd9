"""`/v1/imports`: upload a fleet file to start an import job, then poll its status, progress and errors.

The same job as the admin's and `manage.py import_fleet`'s: checked and imported in one pass (or only
checked with `dryRun`, then confirmed). Files above IMPORT_SYNC_MAX_BYTES run in a Celery job: poll
`GET /v1/imports/{id}` until `status` is `imported` or `invalid`.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from fleet.choices import ImportJobStatus
from fleet.importing.services import import_job_confirm, import_job_create, import_job_progress, import_job_start
from fleet.models import ImportJob
from texture_portal.api.parsers import JSONParser
from texture_portal.api.serializers import TimestampedSerializer
from texture_portal.api.views import WorkspaceReadOnlyViewSet
from texture_portal.models import Workspace

ERRORS_INLINE = 100


class ImportErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text="Spreadsheet row (the header is row 1).")
    column = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class ImportProgressSerializer(serializers.Serializer):
    phase = serializers.CharField(allow_blank=True)
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class ImportCountsSerializer(serializers.Serializer):
    rows = serializers.IntegerField(required=False)
    new = serializers.IntegerField(required=False)
    updated = serializers.IntegerField(required=False)
    unchanged = serializers.IntegerField(required=False)
    errors = serializers.IntegerField(required=False)


class ImportJobSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=ImportJob._meta.get_field("status").choices, read_only=True)
    statusReason = serializers.CharField(source="status_reason", read_only=True)
    fileName = serializers.CharField(source="original_filename", read_only=True)
    sizeBytes = serializers.IntegerField(source="size_bytes", read_only=True)
    rowCount = serializers.IntegerField(source="row_count", read_only=True)
    counts = ImportCountsSerializer(read_only=True)
    errorCount = serializers.IntegerField(source="error_count", read_only=True)
    errors = serializers.SerializerMethodField(help_text=f"The first {ERRORS_INLINE}; all at /errors.")
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
    progress = serializers.SerializerMethodField()
    validatedAt = serializers.DateTimeField(source="validated_at", read_only=True, allow_null=True)
    confirmedAt = serializers.DateTimeField(source="confirmed_at", read_only=True, allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", read_only=True, allow_null=True)

    def get_errors(self, job) -> list[dict]:
        return list(job.errors or [])[:ERRORS_INLINE]

    def get_progress(self, job) -> dict:
        if job.status not in (ImportJobStatus.VALIDATING, ImportJobStatus.IMPORTING):
            return {"phase": job.progress_phase, "done": job.progress_done, "total": job.progress_total}
        progress = import_job_progress(job)  # live progress is in the cache only while a job runs
        return {
            "phase": progress.get("phase") or "",
            "done": progress.get("done") or 0,
            "total": progress.get("total") or 0,
        }


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (any common delimiter or encoding) or .xlsx, one row per device.")
    dryRun = serializers.BooleanField(default=False, help_text="Only check the file; confirm later.")


class ImportErrorPageSerializer(serializers.Serializer):
    data = ImportErrorSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class ImportJobViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """Fleet import jobs of the key's workspace, newest first."""

    scope_resource = "imports"
    serializer_class = ImportJobSerializer

    def workspace_queryset(self):
        jobs = ImportJob.objects.order_by("-id")
        # a list shows each job's summary; the per-row statuses (megabytes for a big file) stay in the row
        return jobs.defer("row_statuses") if self.action == "list" else jobs

    parser_classes = [JSONParser, MultiPartParser, FormParser]  # uploads are multipart

    @extend_schema(request={"multipart/form-data": ImportUploadSerializer}, responses={202: ImportJobSerializer})
    def create(self, request, *args, **kwargs):
        """Upload a fleet file: checked and imported in one pass (all or nothing), or only checked with
        `dryRun`. Answers 202 with the job; poll it for `status`, `progress` and `errors`."""
        body = ImportUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:  # refused before anything is read into memory
            raise ValidationError(
                {"file": [f"The file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,}."]}
            )
        job = import_job_create(
            workspace=Workspace.objects.get(pk=self.workspace_id),
            filename=upload.name,
            data=upload.read(),
            actor=self.actor,
            source=self.audit_source,
        )
        import_job_start(job=job, actor=self.actor, dry_run=body.validated_data["dryRun"])
        return Response(self.get_serializer(ImportJob.objects.get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: ImportJobSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        """Import a dry run that checked out (`status` = `validated`); the file is checked again first."""
        job = self.get_object()
        import_job_confirm(job=job, actor=self.actor)
        return Response(self.get_serializer(ImportJob.objects.get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("offset", int, description="First error to return (0-based)."),
            OpenApiParameter("perPage", int, description="At most 500."),
        ],
        responses=ImportErrorPageSerializer,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def errors(self, request, pk=None):
        """Every error of the job, in row order, a page at a time."""
        job = self.get_object()
        try:
            offset = max(int(request.query_params.get("offset", 0)), 0)
            per_page = min(max(int(request.query_params.get("perPage", 100)), 1), 500)
        except ValueError:
            offset, per_page = 0, 100
        errors = list(job.errors or [])
        page = errors[offset : offset + per_page]
        following = offset + per_page
        next_url = None
        if following < len(errors):
            next_url = request.build_absolute_uri(f"{request.path}?offset={following}&perPage={per_page}")
        return Response({"data": page, "next": next_url})
