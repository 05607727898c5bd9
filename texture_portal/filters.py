"""Filter pieces shared by every app's `filtersets.py` (camelCase query names, as in the API)."""

import copy
import datetime

import django_filters
from django import forms
from django.contrib import messages
from django.http import QueryDict
from django_filters import utils as filter_utils
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend

from texture_portal.text import cut, quoting_cut


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, normalized to UTC before it reaches the database (which refuses offsets beyond ±15:59);
    a value that leaves the calendar in UTC is a validation error, not a server error."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("Date and time out of range.", code="invalid") from exc


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class _FiltersCopiedShallow(dict):
    """A FilterSet class's filters, copied for each FilterSet by `copy.copy`, not `copy.deepcopy`.

    django-filter deep-copies every filter of the class for every FilterSet it builds (every API list request),
    about 450 copies of choices, labels and dicts that no request changes. A shallow copy is all a FilterSet
    needs to own: its `model` and `parent`, and a method filter's call bound to the copy (re-set here, or it
    would call the class's filter, which has no parent). Filters that build their field from the request (a
    callable `queryset=`) write into their shared `extra`: those are deep-copied as django-filter does."""

    # each filter's form field once a FilterSet of the class has built them: the shared form class's fields,
    # which a filter reads again when it filters (a multiple choice filter asks its field for `to_field_name`)
    fields: dict = {}

    def __deepcopy__(self, memo):
        if any(isinstance(f, django_filters.filters.QuerySetRequestMixin) for f in self.values()):
            return copy.deepcopy(dict(self), memo)
        copies = {}
        for name, filter_ in self.items():
            clone = copy.copy(filter_)
            if filter_.method is not None:
                clone.method = filter_.method  # a FilterMethod of the clone's own
            if name in self.fields:
                clone._field = self.fields[name]
            copies[name] = clone
        return copies


class _FieldsShared(dict):
    """A shared FilterSet form class's fields, which each form takes as they are (Django deep-copies a form's
    fields for each form so that it may change them; filter forms never do)."""

    def __deepcopy__(self, memo):
        return dict(self)


class FilterSet(django_filters.FilterSet):
    """django-filter's FilterSet, cheaper to build (every API list request builds one): filters copied shallow
    (`_FiltersCopiedShallow`), and one form class per FilterSet class, whose fields every form shares.

    django-filter makes a new form class (a `type()` over fresh fields) for each FilterSet: a fifth of the
    filtering's time, and a class that only the garbage collector can free. Unless a filter's field depends on
    the request (a callable `queryset=`), one class serves every request."""

    @classmethod
    def get_filters(cls):
        return _FiltersCopiedShallow(super().get_filters())

    def get_form_class(self):
        cls = type(self)
        form_class = cls.__dict__.get("_shared_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            if not any(isinstance(f, django_filters.filters.QuerySetRequestMixin) for f in self.filters.values()):
                form_class.base_fields = _FieldsShared(form_class.base_fields)
                cls.base_filters.fields = dict(form_class.base_fields)
                cls._shared_form_class = form_class
        return form_class


class FilterBackend(DjangoFilterBackend):
    """django-filter's DRF backend, letting go of each FilterSet once its queryset is built.

    A FilterSet's filters point back at it and it holds the request: a cycle that kept the request and its view
    (and the view its page of rows) alive until the garbage collector's next pass. The filtered queryset
    holds no reference to the FilterSet, so emptying it after use frees them with the request."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        try:
            if not filterset.is_valid() and self.raise_exception:
                raise filter_utils.translate_validation(filterset.errors)
            return filterset.qs
        finally:
            vars(filterset).clear()


class UpdatedSinceFilterSet(FilterSet):
    """Every FilterSet answers `updatedSince` (ISO 8601): rows changed at or after that time."""

    updatedSince = IsoDateTimeFilter(
        field_name="last_updated", lookup_expr="gte", label="Changed at or after (ISO 8601)"
    )


MAX_ID = 2**63 - 1  # bigint: larger values are no id at all (and would overflow the database driver)


class IdFilter(django_filters.NumberFilter):
    """An object id (a positive 64-bit integer); anything else is a 400, never a database error."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class FilterSetAdminMixin:
    """Shares an app's FilterSet with its admin changelist: the changelist accepts the API's query names
    (`/admin/fleet/device/?manufacturer=tesla&updatedSince=2026-07-01T00:00:00Z`) and filters with the very
    same FilterSet. Names the admin's own sidebar filters already use (e.g. `program`, `tag`, which take ids
    there) stay the admin's."""

    filterset_class = None

    def _admin_param_names(self) -> set[str]:
        return {getattr(item, "parameter_name", None) for item in self.list_filter} - {None}

    def changelist_view(self, request, extra_context=None):
        taken = self._admin_param_names()
        names = [name for name in self.filterset_class.base_filters if name in request.GET and name not in taken]
        if names:
            data = QueryDict(mutable=True)
            remaining = request.GET.copy()
            for name in names:
                data.setlist(name, request.GET.getlist(name))
                del remaining[name]
            request.GET = remaining  # the admin's ChangeList would refuse names that are not model lookups
            request.api_filter_data = data
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        data = getattr(request, "api_filter_data", None)
        if not data:
            return queryset
        filterset = self.filterset_class(data, queryset=queryset, request=request)
        if not filterset.is_valid():
            errors = "; ".join(
                f"{cut(name)}: {' '.join(quoting_cut(msg, data.getlist(name)) for msg in msgs)}"
                for name, msgs in filterset.errors.items()
            )
            messages.error(request, f"Invalid filter — {errors}")
            return queryset.none()
        return filterset.qs
