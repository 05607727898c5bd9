"""The project's FilterSet base (texture_portal/filters.py): filters copied shallow but owned by each FilterSet,
one form class per FilterSet class with shared fields, and the same validation and filtering per request."""

import django_filters
import pytest
from django.http import QueryDict

from fleet.filtersets import DeviceFilterSet
from fleet.models import Device, Manufacturer
from tests.factories import DeviceFactory, DeviceTagFactory
from texture_portal.filters import FilterSet


def test_every_filterset_of_a_class_shares_one_form_class_and_validates_its_own_data():
    first = DeviceFilterSet(QueryDict("state=offline&siteId=12"), queryset=Device.objects.none())
    second = DeviceFilterSet(QueryDict("state=not-a-state&siteId=0"), queryset=Device.objects.none())
    assert first.is_valid() and not second.is_valid()
    assert type(first.form) is type(second.form)
    assert first.form.cleaned_data["state"] == ["offline"] and first.form.cleaned_data["siteId"] == 12
    assert set(second.errors) == {"state", "siteId"}
    assert first.form.fields is not second.form.fields  # each form its own mapping of the shared fields
    # and a filter reads the same field its form validates with (not one built again for each request)
    third = DeviceFilterSet(QueryDict(""), queryset=Device.objects.none())
    assert third.filters["state"].field is type(first.form).base_fields["state"]


def test_each_filterset_owns_its_filters_and_its_method_filters_call_it():
    first = DeviceFilterSet(QueryDict("tag=a"), queryset=Device.objects.none())
    second = DeviceFilterSet(QueryDict("tag=b"), queryset=Device.objects.none())
    for name, filter_ in first.filters.items():
        assert filter_ is not DeviceFilterSet.base_filters[name] and filter_ is not second.filters[name]
        assert filter_.parent is first and DeviceFilterSet.base_filters[name].__dict__.get("parent") is None
    assert first.filters["tag"].filter.method.__self__ is first
    assert second.filters["tag"].filter.method.__self__ is second
    assert DeviceFilterSet.base_filters["tag"].filter.f is DeviceFilterSet.base_filters["tag"]


def test_a_filterset_whose_fields_depend_on_the_request_builds_its_form_class_each_time():
    class ByManufacturer(FilterSet):
        manufacturer = django_filters.ModelChoiceFilter(queryset=lambda request: Manufacturer.objects.all())

        class Meta:
            model = Device
            fields = ["manufacturer"]

    first = ByManufacturer(QueryDict(""), queryset=Device.objects.none())
    second = ByManufacturer(QueryDict(""), queryset=Device.objects.none())
    assert type(first.form) is not type(second.form)
    # and its filters are deep copies, as django-filter makes them (the field writes into the filter's extra)
    assert first.filters["manufacturer"].extra is not ByManufacturer.base_filters["manufacturer"].extra


@pytest.mark.django_db
def test_filtering_still_filters():
    tagged, other = DeviceFactory(), DeviceFactory()
    tagged.tags.add(DeviceTagFactory(workspace=tagged.workspace, name="feeder:7"))
    for query, expected in (("tag=feeder:7", [tagged]), (f"siteId={other.site_id}", [other]), ("tag=none", [])):
        filterset = DeviceFilterSet(QueryDict(query), queryset=Device.objects.all())
        assert filterset.is_valid(), filterset.errors
        assert list(filterset.qs) == expected, query
