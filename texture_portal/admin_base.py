"""Admin base classes that cannot forget the workspace.

- querysets: only rows of the user's workspaces (all for a superuser);
- an object of another workspace is a 404, never a redirect that confirms it exists;
- permissions: the role the user holds in the object's own workspace decides view/change/delete;
- form choices and list filters: only the user's workspaces and their related rows;
- saves and deletes: an audit row with the changed fields;
- hostile input (`HardenedAdminMixin`, on every registered admin, the portal's and Django's own): an id that is
  no id (`abc`, `1.5`, 30 digits) names nothing (404), a list filter's value its filter refuses is the admin's
  "invalid filter" answer instead of a server error, a hostile action selection selects nothing, a history page
  answers a user without the model's view permission 403 whether or not the object exists (no existence oracle);
  a search over ADMIN_SEARCH_MAX_LENGTH finds nothing and says why; NUL bytes and over-long query values are refused
  before any view by `texture_portal.middleware.AdminInputGuardMiddleware`;
- times: shown in the active zone (the user's workspace's, texture_portal.middleware) with its abbreviation and
  the UTC instant on hover; entered ones read in that zone, a time the clocks skip or repeat refused.

`texture_portal.checks` fails the system check for any tenant model registered without these classes.
"""

import functools
import importlib
import re
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin as ThemedModelAdmin
from unfold.admin import TabularInline as ThemedTabularInline
from unfold.widgets import UnfoldAdminSplitDateTimeWidget

from texture_portal.audit import audit_record
from texture_portal.auth import workspaces_where
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError
from texture_portal.filters import MAX_ID
from texture_portal.models import WorkspaceMembership
from texture_portal.tenancy import is_workspace_scoped
from texture_portal.text import cut
from texture_portal.timezones import abbreviation, local_to_aware, time_html, zone_name

# -- times -------------------------------------------------------------------------------------------------
#
# Django renders a datetime of a changelist cell or a read-only field as `localize(template_localtime(value))`
# in the active zone, without saying which. Unfold's list, read-only field and section rendering call
# `display_for_field` / `display_for_value` (imported by name into each module); those names are replaced,
# once, by versions that render an aware datetime as `time_html` ("2026-07-15 16:00 PDT", the UTC instant in
# <time datetime> and on hover) and leave every other value to the original. Wrapping the functions rather
# than each admin's fields keeps column names, sorting and list_display_links as they are.

# (module, whether it must have display_for_field): unfold's list cells and read-only fields are what staff see;
# the rest are patched when present (Django's own list and read-only rendering, unfold's sections).
_DISPLAY_MODULES = [
    ("unfold.templatetags.unfold_list", True),
    ("unfold.fields", True),
    ("unfold.sections", False),
    ("unfold.utils", False),
    ("django.contrib.admin.utils", False),
    ("django.contrib.admin.helpers", False),
    ("django.contrib.admin.templatetags.admin_list", False),
]


def _is_aware_datetime(value) -> bool:
    return isinstance(value, datetime) and timezone.is_aware(value)


def _field_display(original):
    @functools.wraps(original)
    def display_for_field(value, field, empty_value_display, *args, **kwargs):
        if (
            isinstance(field, models.DateTimeField)
            and not getattr(field, "flatchoices", None)
            and _is_aware_datetime(value)
        ):
            return time_html(value)
        return original(value, field, empty_value_display, *args, **kwargs)

    display_for_field.shows_local_time = True
    return display_for_field


def _value_display(original):
    @functools.wraps(original)
    def display_for_value(value, empty_value_display, boolean=False, *args, **kwargs):
        if not boolean and _is_aware_datetime(value):
            return time_html(value)
        return original(value, empty_value_display, boolean, *args, **kwargs)

    display_for_value.shows_local_time = True
    return display_for_value


def show_local_times() -> None:
    """Install the labelled-time rendering (idempotent; runs when this module is imported, before any admin
    page renders). Fails loudly if unfold stops rendering values through these names."""
    for module_name, required in _DISPLAY_MODULES:
        module = importlib.import_module(module_name)
        for name, wrap in (("display_for_field", _field_display), ("display_for_value", _value_display)):
            current = getattr(module, name, None)
            if current is None:
                if required and name == "display_for_field":
                    raise ImproperlyConfigured(
                        f"{module_name} no longer has {name}: the admin's local-time labels "
                        "(texture_portal.admin_base) need another hook for this unfold version."
                    )
                continue
            if not getattr(current, "shows_local_time", False):
                setattr(module, name, wrap(current))


show_local_times()


class LocalSplitDateTimeWidget(UnfoldAdminSplitDateTimeWidget):
    """Unfold's date and time inputs, showing the value in the active zone and naming that zone below them."""

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        zone = timezone.get_current_timezone()
        label = zone_name(zone)
        if _is_aware_datetime(value):
            label = f"{label} ({abbreviation(value.astimezone(zone))})"
        return format_html('{}<div class="help local-time-zone">{}</div>', html, label)


class LocalSplitDateTimeField(forms.SplitDateTimeField):
    """A date and a time read in the active zone. A time the clocks skip (spring forward) or pass twice (fall
    back) there is refused with both instants it could mean — Django's own message says only that it "may be
    ambiguous or may not exist"."""

    widget = LocalSplitDateTimeWidget

    def compress(self, data_list):
        if data_list and data_list[0] not in self.empty_values and data_list[1] not in self.empty_values:
            local = datetime.combine(*data_list)
            return local_to_aware(local, timezone.get_current_timezone())
        return super().compress(data_list)


# -- request values that name objects -------------------------------------------------------------------------


def object_id_or_none(model, raw):
    """The primary key of `model` that `raw` (a value from the request) names, or None when it names nothing:
    not text of the key's type (`abc`, `1.5`, `0x10`), a NUL byte, or an integer outside 1…2⁶³-1."""
    if raw is None or isinstance(raw, str) and (not raw or "\x00" in raw or len(raw) > 64):
        return None
    field = model._meta.pk
    try:
        value = field.to_python(raw)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None
    if isinstance(value, int) and not 1 <= value <= MAX_ID:
        return None
    return value


def scoped_object_or_none(queryset, user, raw_id):
    """The object of `queryset` with the id `raw_id` (a request value) in one of `user`'s workspaces, or None
    (for an id that is no id, of another workspace, or of nothing): what every admin lookup by a request's id
    goes through."""
    pk = object_id_or_none(queryset.model, raw_id)
    if pk is None:
        return None
    if is_workspace_scoped(queryset.model):
        queryset = scope_to_user(queryset, user)
    return queryset.filter(pk=pk).first()


def scope_to_user(queryset, user):
    """Restrict any queryset of a tenant model (or Workspace) to the user's workspaces."""
    if user.is_active and user.is_superuser:
        return queryset
    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    member_of = WorkspaceMembership.objects.filter(user_id=user.pk).values("workspace_id")
    field = "pk" if queryset.model._meta.model_name == "workspace" else "workspace_id"
    return queryset.filter(**{f"{field}__in": member_of})


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A related-object filter whose choices are only the user's workspaces' rows (no cross-tenant names)."""

    def field_choices(self, field, request, model_admin):
        related_model = field.related_model
        ordering = self.field_admin_ordering(field, request, model_admin)
        if not is_workspace_scoped(related_model) or (request.user.is_active and request.user.is_superuser):
            return field.get_choices(include_blank=False, ordering=ordering)
        member_of = WorkspaceMembership.objects.filter(user_id=request.user.pk).values("workspace_id")
        scope = "pk" if related_model._meta.model_name == "workspace" else "workspace_id"
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to=Q(**{f"{scope}__in": member_of})
        )


def _integer_lookup_out_of_range(model, params) -> str | None:
    """The first lookup (`workspace=…`, `device__id__in=…`) whose field is an integer or a key to one and whose
    value is a number beyond 64 bits (SQLite's driver overflows on it while the query runs, past every
    validation); None when there is none."""
    for key, values in params.items():
        path = key.split(LOOKUP_SEP)
        field = None
        for length in (len(path), len(path) - 1):
            try:
                field = get_fields_from_path(model, LOOKUP_SEP.join(path[:length]))[-1] if length else None
                break
            except (FieldDoesNotExist, NotRelationField):
                continue
        if field is not None and field.is_relation and getattr(field, "target_field", None) is not None:
            field = field.target_field
        if not isinstance(field, models.IntegerField):
            continue
        for value in values if isinstance(values, list) else [values]:
            for part in str(value).split(","):
                if INTEGER.fullmatch(part.strip()) and abs(int(part)) > MAX_ID:
                    return key
    return None


INTEGER = re.compile(r"[+-]?\d+")


class HardenedChangeListMixin:
    """A list filter that refuses its value (a SimpleListFilter's `int("bogus")`, an id beyond 64 bits) says so
    and lists nothing, as the API-named filters do (`FilterSetAdminMixin`), never a server error."""

    def get_queryset(self, request, exclude_parameters=None):
        if len(self.query) > settings.ADMIN_SEARCH_MAX_LENGTH:
            if not getattr(request, "_invalid_filter_said", False):
                messages.error(
                    request,
                    f"The search is {len(self.query):,} characters long; "
                    f"at most {settings.ADMIN_SEARCH_MAX_LENGTH:,} are allowed.",
                )
                request._invalid_filter_said = True
            return self.root_queryset.none()
        too_large = _integer_lookup_out_of_range(self.model, getattr(self, "filter_params", {}))
        if too_large:
            return self._refused(request, f"{cut(too_large)}: not a number the database holds.")
        try:
            return super().get_queryset(request, exclude_parameters)
        except IncorrectLookupParameters:
            raise  # Django's own answer (a page saying the filter is wrong)
        except (ValueError, ValidationError, TypeError, OverflowError) as exc:
            return self._refused(request, exc.messages[0] if isinstance(exc, ValidationError) else str(exc))

    def _refused(self, request, reason: str):
        if not getattr(request, "_invalid_filter_said", False):  # get_queryset runs again for the facets
            messages.error(request, f"Invalid filter — {cut(reason, 120)}")
            request._invalid_filter_said = True
        return self.root_queryset.none()


@functools.cache
def _hardened_changelist(changelist_class):
    return type(f"Hardened{changelist_class.__name__}", (HardenedChangeListMixin, changelist_class), {})


class HardenedAdminMixin:
    """What every registered ModelAdmin answers to hostile request values (see the module's docstring)."""

    def get_object(self, request, object_id, from_field=None):
        if from_field is None and object_id_or_none(self.model, object_id) is None:
            return None
        return super().get_object(request, object_id, from_field)

    def get_changelist(self, request, **kwargs):
        return _hardened_changelist(super().get_changelist(request, **kwargs))

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > settings.ADMIN_SEARCH_MAX_LENGTH:  # an autocomplete's: nothing (a changelist says why)
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def history_view(self, request, object_id, extra_context=None):
        # Django looks the object up first and answers "does not exist" (302) before checking the permission
        # (403): that told any staff user which ids exist. The model-level permission is checked first.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)

    def response_action(self, request, queryset):
        """Only values that are ids are selected (`abc`, 30 digits or a NUL select nothing; Django's filter would
        raise). The queryset is the user's already: another workspace's id selects nothing either."""
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        ids = [object_id_or_none(self.model, value) for value in selected]
        valid = [value for value, pk in zip(selected, ids, strict=True) if pk is not None]
        if len(valid) != len(selected):
            post = request.POST.copy()
            post.setlist(ACTION_CHECKBOX_NAME, valid)
            request.POST = post
        return super().response_action(request, queryset)


class WorkspaceScopedAdminMixin:
    """Scoping, per-workspace permissions and scoped choices; shared by ModelAdmins and inlines."""

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request), request.user)

    # -- permissions: the role held in the object's workspace decides ---------------------------------
    def _perm(self, action: str) -> str:
        opts = self.opts
        return f"{opts.app_label}.{get_permission_codename(action, opts)}"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(self._perm("view"), obj) or request.user.has_perm(self._perm("change"), obj)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm(self._perm("change"), obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm(self._perm("delete"), obj)

    # -- choices -----------------------------------------------------------------------------------------
    def _workspace_choices(self, request):
        return workspaces_where(request.user, self._perm("add")).select_related("organization") | workspaces_where(
            request.user, self._perm("change")
        ).select_related("organization")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related_model = db_field.related_model
        if db_field.name == "workspace" and related_model._meta.model_name == "workspace":
            choices = self._workspace_choices(request).distinct()
            kwargs["queryset"] = choices
            if choices.count() == 1:
                kwargs["initial"] = choices.first()
        elif is_workspace_scoped(related_model):
            base = kwargs.get("queryset") or related_model._default_manager.all()
            kwargs["queryset"] = scope_to_user(base, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """Datetime inputs read in the active zone (an admin that configured its own datetime field keeps
        it: dispatch's event windows are read in their program's zone)."""
        if isinstance(db_field, models.DateTimeField) and "form_class" not in kwargs:
            configured = self.formfield_overrides.get(models.DateTimeField, {}).get("form_class")
            if configured in (None, forms.SplitDateTimeField):
                kwargs.update(form_class=LocalSplitDateTimeField, widget=LocalSplitDateTimeWidget)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related_model = db_field.related_model
        if is_workspace_scoped(related_model):
            base = kwargs.get("queryset") or related_model._default_manager.all()
            kwargs["queryset"] = scope_to_user(base, request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class WorkspaceScopedAdmin(HardenedAdminMixin, WorkspaceScopedAdminMixin, ThemedModelAdmin):
    """The ModelAdmin of every tenant model."""

    show_full_result_count = False  # the extra unfiltered COUNT(*) is the slowest query of a big changelist
    list_per_page = 50
    list_max_show_all = 500

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Not in the user's workspaces (or does not exist): the same answer either way.
            raise Http404(f"No {self.opts.verbose_name} with id “{cut(object_id)}” in your workspaces.")
        return obj

    def has_add_permission(self, request):
        return request.user.has_perm(self._perm("add"))

    # -- a service's refusal is a form error ------------------------------------------------------------------
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A service that refuses the save (`ApplicationError`: "not launched for production dispatch") leaves
        the page as a form error on the data typed, never a server error: the refused attempt is rolled back
        (Django's change form runs in a transaction), and the form is validated again with the refusal."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            if request.method != "POST" or hasattr(request, "service_refusal"):
                raise
            request.service_refusal = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, "service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                field = refusal.extra.get("field")
                self.add_error(field if field in self.fields else None, refusal.message)
                return cleaned

        RefusedForm.__name__ = form_class.__name__
        return RefusedForm

    def save_model(self, request, obj, form, change):
        """Check the role in the chosen workspace, save, and audit the changed fields."""
        action = "change" if change else "add"
        if not request.user.has_perm(self._perm(action), obj):
            raise PermissionDenied(f"You may not {action} {self.opts.verbose_name_plural} in this workspace.")
        self.perform_save(request, obj, form, change)
        self.audit_save(request, obj, form, change)

    def perform_save(self, request, obj, form, change):
        """Where a model's writes belong to a service, its admin overrides this to call the service."""
        super().save_model(request, obj, form, change)

    def audit_save(self, request, obj, form, change):
        if change:
            changed = {
                name: [form.initial.get(name), form.cleaned_data.get(name)]
                for name in form.changed_data
                if name in form.cleaned_data
            }
            if not changed:
                return
            audit_record(
                actor=request.user,
                action=AuditAction.OBJECT_CHANGED,
                target=obj,
                source=AuditSource.ADMIN,
                changes=changed,
            )
        else:
            audit_record(actor=request.user, action=AuditAction.OBJECT_CREATED, target=obj, source=AuditSource.ADMIN)

    def delete_model(self, request, obj):
        audit_record(actor=request.user, action=AuditAction.OBJECT_DELETED, target=obj, source=AuditSource.ADMIN)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            if not request.user.has_perm(self._perm("delete"), obj):
                raise PermissionDenied(f"You may not delete “{obj}”.")
            audit_record(actor=request.user, action=AuditAction.OBJECT_DELETED, target=obj, source=AuditSource.ADMIN)
        super().delete_queryset(request, queryset)


class ReadOnlyWorkspaceScopedAdmin(WorkspaceScopedAdmin):
    """For records written only by services (history, telemetry, the audit log)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WorkspaceScopedTabularInline(WorkspaceScopedAdminMixin, ThemedTabularInline):
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm(self._perm("add"), obj)


class ReadOnlyWorkspaceScopedTabularInline(WorkspaceScopedTabularInline):
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
