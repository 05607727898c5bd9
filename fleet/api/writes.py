"""The fleet's writes on `/v1` (contacts, sites, devices, tags): the read viewsets of `fleet.api.views` with
create, change and delete added, each parsing its body with `fleet.api.inputs` and calling one fleet service
(audited, emitting the same platform events as the admin and the importer). POSTs take an `Idempotency-Key`."""

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from fleet import services
from fleet.api import views
from fleet.api.inputs import ContactInput, DeviceInput, DeviceTagsInput, DeviceUpdateInput, SiteInput
from fleet.api.listing import device_list_response, device_list_rows
from fleet.api.serializers import ContactSerializer, DeviceSerializer, SiteSerializer
from fleet.filtersets import DeviceFilterSet
from fleet.models import Contact, Device, DeviceTag
from texture_portal.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, IdempotentCreateMixin
from texture_portal.api.serializers import json_object
from texture_portal.api.views import WorkspaceApiMixin
from texture_portal.exceptions import Conflict
from texture_portal.filters import MAX_ID

DELETED = OpenApiResponse(description="Deleted.")


class FleetWriteMixin(IdempotentCreateMixin):
    """Create (POST, idempotent with a key), change (PATCH) and delete (DELETE) on a fleet read viewset."""

    create_input = None
    update_input = None
    # 409: a delete the object's links refuse, an Idempotency-Key reused for another body
    transition_actions = ("create", "destroy", "upsert")

    def parse(self, input_class, *, instance=None, partial=False, **kwargs):
        body = input_class(
            instance=instance,
            data=json_object(self.request),
            partial=partial,
            context={"workspace_id": self.workspace_id, "request": self.request},
            **kwargs,
        )
        body.is_valid(raise_exception=True)
        return body.validated_data

    def write_create(self, data):
        raise NotImplementedError

    def write_update(self, instance, data):
        raise NotImplementedError

    def write_delete(self, instance):
        raise NotImplementedError

    def create(self, request, *args, **kwargs):
        def write():
            data = self.parse(self.create_input)
            try:
                with transaction.atomic():
                    obj = self.write_create(data)
            except IntegrityError as exc:  # the same referenceId / serial written meanwhile by another request
                raise Conflict("An object with the same unique value was created meanwhile; read it again.") from exc
            return Response(
                self.get_serializer(self.get_queryset().get(pk=obj.pk)).data, status=status.HTTP_201_CREATED
            )

        return self.idempotent(request, write)

    def partial_update(self, request, *args, **kwargs):
        instance = self.get_object()
        with transaction.atomic():
            self.write_update(instance, self.parse(self.update_input, instance=instance, partial=True))
        return Response(self.get_serializer(self.get_queryset().get(pk=instance.pk)).data)

    def destroy(self, request, *args, **kwargs):
        self.write_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactViewSet(FleetWriteMixin, views.ContactViewSet):
    scope_resource = "contacts"
    create_input = update_input = ContactInput

    def write_create(self, data):
        return services.contact_create(
            workspace=self.request.auth.workspace, actor=self.actor, source=self.audit_source, **data
        )

    def write_update(self, instance, data):
        services.contact_update(contact=instance, data=data, actor=self.actor, source=self.audit_source)

    def write_delete(self, instance):
        services.contact_delete(contact=instance, actor=self.actor, source=self.audit_source)

    @extend_schema(
        request=ContactInput,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: ContactSerializer},
        summary="Create a contact",
    )
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(request=ContactInput, responses=ContactSerializer, summary="Change a contact")
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: DELETED}, summary="Delete a contact without sites (409 otherwise)")
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    @extend_schema(
        request=ContactInput,
        responses={200: ContactSerializer, 201: ContactSerializer},
        summary="Create or update the contact of a referenceId",
        description="The body's fields replace the contact's (`referenceId` may be left out: it is the path's). "
        "201 when the contact was created, 200 when it existed.",
    )
    @action(detail=False, methods=["put"], url_path=r"by-reference/(?P<referenceId>[^/]+)")
    def upsert(self, request, referenceId=None):  # noqa: N803 (the path's name, as Texture spells it)
        reference_id = referenceId.strip()
        data = self.parse(ContactInput, reference_from_path=reference_id)
        data.pop("reference_id", None)
        if not reference_id or len(reference_id) > 100:
            raise serializers.ValidationError({"referenceId": ["not a referenceId (1 to 100 characters)"]})
        contact, created = services.contact_upsert(
            workspace=request.auth.workspace,
            reference_id=reference_id,
            data=data,
            actor=self.actor,
            source=self.audit_source,
        )
        return Response(
            ContactSerializer(Contact.objects.get(pk=contact.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SiteViewSet(FleetWriteMixin, views.SiteViewSet):
    scope_resource = "sites"
    create_input = update_input = SiteInput

    def write_create(self, data):
        return services.site_create(
            workspace=self.request.auth.workspace, actor=self.actor, source=self.audit_source, **data
        )

    def write_update(self, instance, data):
        services.site_update(site=instance, data=data, actor=self.actor, source=self.audit_source)

    def write_delete(self, instance):
        services.site_delete(site=instance, actor=self.actor, source=self.audit_source)

    @extend_schema(
        request=SiteInput,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: SiteSerializer},
        summary="Create a site",
    )
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(request=SiteInput, responses=SiteSerializer, summary="Change a site")
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: DELETED}, summary="Delete a site without devices (409 otherwise)")
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)


class DeviceTagsSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(), help_text="Sorted by name.")


class DeviceViewSet(FleetWriteMixin, views.DeviceViewSet):
    scope_resource = "devices"
    create_input = DeviceInput
    update_input = DeviceUpdateInput

    def write_create(self, data):
        return services.device_create(
            workspace=self.request.auth.workspace, actor=self.actor, source=self.audit_source, **data
        )

    def write_update(self, instance, data):
        data = dict(data)
        tags = data.pop("tags", None)
        services.device_update(device=instance, data=data, tags=tags, actor=self.actor, source=self.audit_source)

    def write_delete(self, instance):
        services.device_delete(device=instance, actor=self.actor, source=self.audit_source)

    @extend_schema(
        request=DeviceInput,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: DeviceSerializer},
        summary="Add a device (a Registered System, enrolled in a program)",
    )
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(request=DeviceUpdateInput, responses=DeviceSerializer, summary="Change a device")
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    @extend_schema(
        responses={204: DELETED}, summary="Delete a Registered System (409 for a device ever on the workspace)"
    )
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)


class DeviceTagsView(WorkspaceApiMixin, generics.GenericAPIView):
    """`/devices/{id}/tags`: the device's tags, and the whole set replaced at once."""

    scope_resource = "tags"
    serializer_class = DeviceTagsSerializer
    pagination_class = None
    filter_backends = []

    def workspace_queryset(self):
        return Device.objects.all()

    def device(self):
        if int(self.kwargs["pk"]) > MAX_ID:
            raise NotFound()
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    @staticmethod
    def body(device) -> dict:
        return {"tags": sorted(device.tags.values_list("name", flat=True))}

    @extend_schema(responses=DeviceTagsSerializer, summary="A device's tags")
    def get(self, request, pk):
        return Response(self.body(self.device()))

    @extend_schema(request=DeviceTagsInput, responses=DeviceTagsSerializer, summary="Replace a device's tags")
    def put(self, request, pk):
        device = self.device()
        body = DeviceTagsInput(data=json_object(request))
        body.is_valid(raise_exception=True)
        services.device_update(
            device=device, data={}, tags=body.validated_data["tags"], actor=self.actor, source=self.audit_source
        )
        return Response(self.body(device))


class TagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    deviceCount = serializers.IntegerField(source="device_count", help_text="Devices carrying it.")


class TagListView(WorkspaceApiMixin, generics.ListAPIView):
    """`/tags`: the workspace's tags with how many devices carry each (one grouped query a page); the devices
    of one are `/tags/{tag}/devices`."""

    scope_resource = "tags"
    serializer_class = TagSerializer
    filter_backends = []

    def workspace_queryset(self):
        return DeviceTag.objects.annotate(device_count=Count("devices"))


class TagDevicesView(WorkspaceApiMixin, generics.ListAPIView):
    """`/tags/{tag}/devices`: the devices carrying a tag (by name), in the body of `/devices`, with its filters.
    404 when the workspace has no tag of this name."""

    scope_resource = "tags"
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet

    def workspace_queryset(self):
        return device_list_rows()  # the device list's own rows and bodies (fleet/api/listing.py)

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        return queryset.filter(tags__name=self.kwargs["tag"])

    def list(self, request, *args, **kwargs):
        get_object_or_404(DeviceTag.objects.filter(workspace_id=self.workspace_id), name=self.kwargs["tag"])
        rows = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return device_list_response(self, rows)
