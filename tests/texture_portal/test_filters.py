"""The project's FilterSet base (texture_portal/filters.py): one form class per FilterSet class, the same
validation per request."""

import django_filters
import pytest
from django.http import QueryDict

from fleet.filtersets import DeviceFilterSet
from fleet.models import Device, Manufacturer
from texture_portal.filters import FilterSet


def test_every_filterset_of_a_class_shares_one_form_class_and_validates_its_own_data():
    first = DeviceFilterSet(QueryDict("state=offline&siteId=12"), queryset=Device.objects.none())
    second = DeviceFilterSet(QueryDict("state=not-a-state&siteId=0"), queryset=Device.objects.none())
    assert first.is_valid() and not second.is_valid()
    assert type(first.form) is type(second.form)
    assert first.form.cleaned_data["state"] == ["offline"] and first.form.cleaned_data["siteId"] == 12
    assert set(second.errors) == {"state", "siteId"}
    assert first.form.fields["state"] is not second.form.fields["state"]  # each form has its own fields


def test_a_filterset_whose_fields_depend_on_the_request_builds_its_form_class_each_time():
    class ByManufacturer(FilterSet):
        manufacturer = django_filters.ModelChoiceFilter(queryset=lambda request: Manufacturer.objects.all())

        class Meta:
            model = Device
            fields = ["manufacturer"]

    first = ByManufacturer(QueryDict(""), queryset=Device.objects.none())
    second = ByManufacturer(QueryDict(""), queryset=Device.objects.none())
    assert type(first.form) is not type(second.form)


@pytest.mark.django_db
def test_filtering_still_filters():
    filterset = DeviceFilterSet(QueryDict("manufacturer=nobody"), queryset=Device.objects.all())
    assert filterset.is_valid()
    assert "nobody" in str(filterset.qs.query)
