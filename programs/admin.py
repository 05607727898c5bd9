"""Programs admin: phases and the launch checklist (sign-offs, production dispatch), versioned event strategies,
enrollment decisions."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from programs import selectors, services
from programs.choices import PHASE_ORDER, EnrollmentStatus, EventType, ProgramPhase
from programs.filtersets import EnrollmentFilterSet, ProgramFilterSet
from programs.launch import CRITERIA
from programs.models import Enrollment, EventStrategy, Program
from texture_portal.admin_actions import run_service_for_each
from texture_portal.admin_base import (
    ReadOnlyWorkspaceScopedTabularInline,
    ScopedRelatedFieldListFilter,
    WorkspaceScopedAdmin,
    scoped_object_or_none,
)
from texture_portal.choices import AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import FilterSetAdminMixin


class EventStrategyInline(ReadOnlyWorkspaceScopedTabularInline):
    model = EventStrategy
    fields = [
        "version",
        "allowed_event_types",
        "min_soc_percent",
        "max_soc_percent",
        "ramp_minutes",
        "max_event_duration_minutes",
        "enable_grid_interaction",
        "created",
    ]
    readonly_fields = fields
    verbose_name_plural = _("event strategy versions (newest first)")


@admin.register(Program)
class ProgramAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = ProgramFilterSet  # the API's filters, by the API's names
    change_form_template = "admin/programs/program/change_form.html"
    list_display = [
        "name",
        "slug",
        "program_type",
        "phase",
        "enrollment_approval",
        "enrolled",
        "launch_threshold",
        "production_dispatch_enabled",
        "timezone",
        "workspace",
    ]
    list_select_related = ["workspace__organization"]
    list_filter = ["phase", "program_type", ("workspace", ScopedRelatedFieldListFilter)]
    search_fields = ["^slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [EventStrategyInline]
    actions = [
        "advance_phase",
        "move_phase_back",
        "enable_production_dispatch",
        "disable_production_dispatch",
    ]
    fields = [
        "workspace",
        "name",
        "slug",
        "description",
        "program_type",
        "enrollment_approval",
        "launch_threshold",
        "reporting_target_percent",
        "target_launch_date",
        "timezone",
        "phase",
        "production_dispatch_enabled",
        "launch_readiness",
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["phase", "production_dispatch_enabled", "launch_readiness"]
        return ["workspace", *fixed] if obj else fixed

    def get_queryset(self, request):
        active = [EnrollmentStatus.SUBMITTED, EnrollmentStatus.APPROVED]
        return (
            super()
            .get_queryset(request)
            .annotate(enrolled_count=Count("enrollments", filter=Q(enrollments__status__in=active)))
        )

    @admin.display(description=_("enrolled"), ordering="enrolled_count")
    def enrolled(self, obj):
        return obj.enrolled_count

    @admin.display(description=_("launch checklist"))
    def launch_readiness(self, obj):
        """A one-line summary; the checklist itself is below the form (change_form.html)."""
        if obj is None or obj.pk is None:
            return "—"
        # the page's checklist (render_change_form), else computed here
        checklist = getattr(obj, "_launch_checklist", None) or selectors.program_launch_checklist(program=obj)
        phase = checklist.phase(obj.phase)
        lines = [
            format_html("{} of {} criteria met.", checklist.met_count, len(checklist.criteria)),
            format_html(
                "This phase ({}): {}.",
                phase.label,
                "its exit criteria hold" if phase.met else f"exit criteria not met yet: {len(phase.unmet)}",
            ),
        ]
        if obj.test_event_passed_id:
            # the event's page, by its admin URL name (programs import nothing of dispatch)
            url = reverse("admin:dispatch_dispatchevent_change", args=[obj.test_event_passed_id])
            lines.append(
                format_html('Test event <a href="{}">#{}</a> completed end to end.', url, obj.test_event_passed_id)
            )
        return format_html_join("", "<div>{}</div>", ((line,) for line in lines))

    # -- the launch checklist: shown below the form, changed by POSTs to these views ---------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            checklist = obj._launch_checklist = selectors.program_launch_checklist(program=obj)
            index = PHASE_ORDER.index(obj.phase)
            context.update(
                launch_checklist=checklist,
                can_sign_off=self.has_change_permission(request, obj),
                next_phase=ProgramPhase(PHASE_ORDER[index + 1]) if index + 1 < len(PHASE_ORDER) else None,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        wrap = self.admin_site.admin_view  # staff only, CSRF-checked
        return [
            path(
                "<int:pk>/launch-checklist/<slug:criterion>/sign-off/",
                wrap(self.sign_off_view),
                name="programs_program_sign_off",
            ),
            path(
                "<int:pk>/launch-checklist/<slug:criterion>/revoke/",
                wrap(self.revoke_view),
                name="programs_program_revoke_sign_off",
            ),
            path("<int:pk>/advance-phase/", wrap(self.advance_phase_view), name="programs_program_advance_phase"),
            path(
                "<int:pk>/production-dispatch/",
                wrap(self.production_dispatch_view),
                name="programs_program_production_dispatch",
            ),
            *super().get_urls(),
        ]

    def _program_to_change(self, request, pk) -> Program:
        program = self.get_object(request, str(pk))  # 404 outside the user's workspaces
        if not self.has_change_permission(request, program):
            raise PermissionDenied(f"You may not change “{program}”.")
        return program

    def _run(self, request, pk, call, done: str):
        program = self._program_to_change(request, pk)
        try:
            call(program)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        url = reverse("admin:programs_program_change", args=[program.pk])
        return HttpResponseRedirect(f"{url}#launch-checklist")

    @staticmethod
    def _label(criterion: str) -> str:
        found = CRITERIA.get(criterion)
        return found.label if found else criterion

    @method_decorator(require_POST)
    def sign_off_view(self, request, pk, criterion):
        return self._run(
            request,
            pk,
            lambda p: services.launch_criterion_sign_off(
                program=p,
                criterion=criterion,
                actor=request.user,
                note=request.POST.get("note", ""),
                source=AuditSource.ADMIN,
            ),
            f"Signed off: {self._label(criterion)}.",
        )

    @method_decorator(require_POST)
    def revoke_view(self, request, pk, criterion):
        return self._run(
            request,
            pk,
            lambda p: services.launch_criterion_revoke(
                program=p,
                criterion=criterion,
                actor=request.user,
                reason=request.POST.get("reason", ""),
                source=AuditSource.ADMIN,
            ),
            f"Sign-off revoked: {self._label(criterion)}.",
        )

    @method_decorator(require_POST)
    def advance_phase_view(self, request, pk):
        def advance(program):
            index = PHASE_ORDER.index(program.phase)
            if index + 1 >= len(PHASE_ORDER):
                raise ApplicationError(f"{program} is launched: there is no next phase.")
            services.program_set_phase(
                program=program,
                phase=PHASE_ORDER[index + 1],
                actor=request.user,
                override_reason=request.POST.get("override_reason", ""),
                source=AuditSource.ADMIN,
            )

        return self._run(request, pk, advance, "Moved to the next phase.")

    @method_decorator(require_POST)
    def production_dispatch_view(self, request, pk):
        enabled = request.POST.get("enabled") == "1"
        return self._run(
            request,
            pk,
            lambda p: services.program_set_production_dispatch(
                program=p, enabled=enabled, actor=request.user, source=AuditSource.ADMIN
            ),
            f"Production dispatch {'enabled' if enabled else 'disabled'}.",
        )

    def perform_save(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.PROGRAM_FIELDS if name in form.cleaned_data}
        if change:
            services.program_update(
                program=Program.objects.get(pk=obj.pk),
                data=data,
                actor=request.user,
                source=AuditSource.ADMIN,
            )
            obj.refresh_from_db()
        else:
            created = services.program_create(
                workspace=obj.workspace, actor=request.user, source=AuditSource.ADMIN, **data
            )
            obj.pk = created.pk

    def audit_save(self, request, obj, form, change):
        """The services audit."""

    @admin.action(description=_("Advance to the next phase"))
    def advance_phase(self, request, queryset):
        def advance(program):
            index = PHASE_ORDER.index(program.phase)
            target = PHASE_ORDER[min(index + 1, len(PHASE_ORDER) - 1)]
            services.program_set_phase(program=program, phase=target, actor=request.user, source=AuditSource.ADMIN)

        run_service_for_each(self, request, queryset, advance, done="Programs advanced")

    @admin.action(description=_("Move back one phase"))
    def move_phase_back(self, request, queryset):
        def back(program):
            target = PHASE_ORDER[max(PHASE_ORDER.index(program.phase) - 1, 0)]
            services.program_set_phase(program=program, phase=target, actor=request.user, source=AuditSource.ADMIN)

        run_service_for_each(self, request, queryset, back, done="Programs moved back")

    @admin.action(description=_("Enable production dispatch (launched programs)"))
    def enable_production_dispatch(self, request, queryset):
        self._set_production_dispatch(request, queryset, enabled=True)

    @admin.action(description=_("Disable production dispatch"))
    def disable_production_dispatch(self, request, queryset):
        self._set_production_dispatch(request, queryset, enabled=False)

    def _set_production_dispatch(self, request, queryset, *, enabled: bool):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda p: services.program_set_production_dispatch(
                program=p, enabled=enabled, actor=request.user, source=AuditSource.ADMIN
            ),
            done=f"Production dispatch {'enabled' if enabled else 'disabled'}",
        )


class EventStrategyForm(forms.ModelForm):
    allowed_event_types = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple, label=_("allowed event types")
    )

    class Meta:
        model = EventStrategy
        fields = ["workspace", "program", *services.STRATEGY_FIELDS]


@admin.register(EventStrategy)
class EventStrategyAdmin(WorkspaceScopedAdmin):
    """Versions are immutable (events keep the rules they ran with): "add" creates the next version."""

    form = EventStrategyForm
    list_display = [
        "program",
        "version",
        "allowed_event_types",
        "min_soc_percent",
        "max_soc_percent",
        "ramp_minutes",
        "max_event_duration_minutes",
        "enable_grid_interaction",
        "created",
    ]
    list_select_related = ["program"]
    list_filter = [("program", ScopedRelatedFieldListFilter), ("workspace", ScopedRelatedFieldListFilter)]

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changeform_initial_data(self, request):
        """Adding from a program (?program=ID) starts from its current version."""
        initial = super().get_changeform_initial_data(request)
        # the id comes from the request: looked up among the user's workspaces' programs only
        program = scoped_object_or_none(Program.objects.all(), request.user, initial.get("program"))
        current = program and selectors.program_current_strategy(program=program)
        if current and request.user.has_perm("programs.view_program", program):
            initial.update({name: getattr(current, name) for name in services.STRATEGY_FIELDS})
            initial["workspace"] = program.workspace_id
        return initial

    def perform_save(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.STRATEGY_FIELDS if name in form.cleaned_data}
        created = services.event_strategy_create_version(
            program=form.cleaned_data["program"], data=data, actor=request.user, source=AuditSource.ADMIN
        )
        obj.pk = created.pk
        obj.version = created.version

    def audit_save(self, request, obj, form, change):
        """The service audits."""


@admin.register(Enrollment)
class EnrollmentAdmin(FilterSetAdminMixin, WorkspaceScopedAdmin):
    filterset_class = EnrollmentFilterSet  # the API's filters, by the API's names
    list_display = ["device", "program", "status", "submitted_at", "decided_at", "reason", "workspace"]
    list_select_related = ["device__manufacturer", "program", "workspace__organization"]
    list_filter = [
        "status",
        ("program", ScopedRelatedFieldListFilter),
        ("workspace", ScopedRelatedFieldListFilter),
    ]
    search_fields = ["^device__system_identifier", "=device__contact__reference_id"]
    autocomplete_fields = ["device"]
    fields = [
        "workspace",
        "device",
        "program",
        "status",
        "submitted_at",
        "decided_at",
        "decided_by",
        "reason",
        "source",
    ]
    readonly_fields = ["status", "submitted_at", "decided_at", "decided_by", "reason", "source"]
    actions = ["approve", "reject", "unenroll"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "device", "program", *self.readonly_fields] if obj else self.readonly_fields

    def perform_save(self, request, obj, form, change):
        if change:
            return  # nothing editable: decisions are actions
        created = services.enrollment_submit(
            device=form.cleaned_data["device"],
            program=form.cleaned_data["program"],
            actor=request.user,
            source=AuditSource.ADMIN,
        )
        obj.pk = created.pk

    def audit_save(self, request, obj, form, change):
        """The services audit."""

    @admin.action(description=_("Approve selected enrollments"))
    def approve(self, request, queryset):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda e: services.enrollment_approve(enrollment=e, actor=request.user, source=AuditSource.ADMIN),
            done="Approved",
        )

    @admin.action(description=_("Reject selected enrollments"))
    def reject(self, request, queryset):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda e: services.enrollment_reject(
                enrollment=e,
                actor=request.user,
                reason=f"Rejected by {request.user}",
                source=AuditSource.ADMIN,
            ),
            done="Rejected",
        )

    @admin.action(description=_("Unenroll selected devices"))
    def unenroll(self, request, queryset):
        run_service_for_each(
            self,
            request,
            queryset,
            lambda e: services.enrollment_unenroll(enrollment=e, actor=request.user, source=AuditSource.ADMIN),
            done="Unenrolled",
        )
