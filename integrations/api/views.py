"""`/v1/connections`: create a Texture Connect session (its link for the customer), list and read them."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.response import Response

from fleet.models import Contact
from integrations.api.serializers import ConnectionCreateSerializer, ConnectionSerializer
from integrations.connect import services
from integrations.models import ConnectSession
from texture_portal.api.serializers import json_object
from texture_portal.api.views import WorkspaceReadOnlyViewSet

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class ConnectionViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """Texture Connect sessions: a signed link (valid CONNECT_LINK_TTL_HOURS) where a customer connects their
    own OEM account; the outcome when they are done."""

    scope_resource = "connections"
    serializer_class = ConnectionSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN

    def workspace_queryset(self):
        return ConnectSession.objects.order_by("-created", "-id")

    @extend_schema(request=ConnectionCreateSerializer, responses={201: ConnectionSerializer})
    def create(self, request, *args, **kwargs):
        """A session and its link (`url`) to send the customer. `customerId` (a contact of this workspace)
        takes priority over `customerInfo`; complete `customerInfo` skips the details form; one manufacturer in
        `manufacturerFilters` skips the picker. At the end the customer is sent to `redirectUrl` with `status`,
        `sessionId` and, when connected, `customerId` and `connectionId`."""
        body = ConnectionCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        contact = None
        if data.get("customerId"):
            contact = Contact.objects.filter(workspace_id=self.workspace_id, pk=data["customerId"]).first()
            if contact is None:
                raise exceptions.ValidationError({"customerId": ["No customer with this id in the workspace."]})
        session = services.connect_session_create(
            workspace=request.auth.workspace,
            actor=self.actor,
            redirect_url=data["redirectUrl"],
            reference_id=data["referenceId"],
            tags=data["tags"],
            client_name=data["clientName"],
            contact=contact,
            customer_info=data.get("customerInfo") or {},
            manufacturer_filters=data.get("manufacturerFilters") or {},
            source=self.audit_source,
        )
        return Response(self.get_serializer(session).data, status=status.HTTP_201_CREATED)
