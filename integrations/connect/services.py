"""Writes of Texture Connect: a customer connects their own OEM account to the workspace.

A session is created (`connect_session_create`, from `POST /v1/connections` or the contact admin's action) and
its signed, expiring link sent to the customer. On the hosted page they confirm their details
(`connect_session_details_save`), pick their manufacturer and go to its consent page
(`connect_session_authorize`: authorization code with PKCE and `state`), or, for an OEM without OAuth, enter
their own credentials (`connect_session_credentials_submit`). On the way back (`connect_session_callback`) the
code is exchanged, the customer's devices are listed with their tokens, and only then, in one transaction,
the Contact, Site, connection (tokens encrypted) and devices are written (`device.discovered`): a refusal at
any step writes nothing but the session's outcome.

A connection's tokens rotate like the workspace's (`connection_tokens_refresh`, under the connection's row
lock); a grant the OEM refuses turns it revoked (`connection_revoke`): its devices go offline with the reason,
and `connection.revoked` goes out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from fleet import services as fleet_services
from fleet.choices import DeviceState, DeviceType
from fleet.models import Contact, Device, Manufacturer, Site
from integrations.choices import ConnectionStatus, ConnectSessionStatus, IntegrationChannel
from integrations.connect import oauth
from integrations.events import IntegrationEventType, connection_data, session_failed_data
from integrations.models import ConnectSession, CustomerConnection, WorkspaceIntegration
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.events import services as outbox
from texture_portal.exceptions import ApplicationError
from texture_portal.tenancy import require_same_workspace

log = logging.getLogger(__name__)

# A device reached through a customer's connection says so here (its id): its telemetry and commands use the
# connection's tokens, and the workspace integration's jobs leave it alone.
CONNECTION_KEY = "connectionId"
LINK_SALT = "integrations.connect.link"
CONTACT_DETAILS = ("first_name", "last_name", "email", "phone")
SITE_DETAILS = ("street_one", "street_two", "city", "state", "postal_code", "country")
LOCATION_KEYS = {
    "streetOne": "street_one",
    "streetTwo": "street_two",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "country": "country",
}
REQUIRED_DETAILS = ("first_name", "last_name", "street_one", "city", "state", "postal_code")


class LinkInvalid(ApplicationError):
    """A link whose signature does not verify (altered, truncated) or that names no session."""


class LinkExpired(ApplicationError):
    pass


class CallbackRefused(ApplicationError):
    """The way back from the OEM does not belong to a session in progress in this browser (`state`)."""


def link_ttl() -> timedelta:
    return timedelta(hours=settings.CONNECT_LINK_TTL_HOURS)


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=LINK_SALT)


def connect_link_path(session: ConnectSession) -> str:
    return reverse("connect:start", args=[_signer().sign(str(session.public_id))])


def connect_link_url(session: ConnectSession, *, base_url: str | None = None) -> str:
    return (base_url or settings.PORTAL_BASE_URL).rstrip("/") + connect_link_path(session)


def connect_session_from_link(token: str) -> ConnectSession:
    """The session a link names. LinkInvalid when its signature fails, LinkExpired past its expiry (the
    signature's age and the session's `expires_at`, whichever comes first)."""
    try:
        value = _signer().unsign(token, max_age=link_ttl())
    except signing.SignatureExpired as exc:
        raise LinkExpired("This link has expired.") from exc
    except signing.BadSignature as exc:
        raise LinkInvalid("This link is not valid: it may have been altered or cut short.") from exc
    session = (
        ConnectSession.objects.select_related("workspace__organization", "contact", "connection")
        .filter(public_id=value)
        .first()
    )
    if session is None:
        raise LinkInvalid("This link is not valid: no such session.")
    if session.expires_at <= timezone.now():
        raise LinkExpired("This link has expired.")
    return session


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- creating a session ----------------------------------------------------------------------------------------
def _manufacturer_channels(slugs: list[str]) -> set[str]:
    channels, unknown = set(), []
    catalog = list(Manufacturer.objects.only("slug", "aliases", "integration_channel"))
    for slug in slugs:
        match = next((m for m in catalog if slug == m.slug or slug in (m.aliases or [])), None)
        if match is None:
            unknown.append(slug)
        else:
            channels.add(match.integration_channel)
    if unknown:
        raise ApplicationError(
            f"manufacturerFilters.manufacturers: unknown manufacturer {', '.join(map(repr, unknown))}.",
            extra={"field": "manufacturerFilters"},
        )
    return channels


def customer_info_details(info: dict) -> dict:
    """Texture's `customerInfo` as the page's details (snake_case; the location flattened)."""
    details = {
        "first_name": info.get("firstName", ""),
        "last_name": info.get("lastName", ""),
        "email": info.get("email", ""),
        "phone": info.get("phone", ""),
    }
    for key, name in LOCATION_KEYS.items():
        details[name] = (info.get("location") or {}).get(key, "")
    return {k: str(v or "").strip() for k, v in details.items()}


def details_complete(details: dict) -> bool:
    return all(details.get(name) for name in REQUIRED_DETAILS)


@transaction.atomic
def connect_session_create(
    *,
    workspace,
    actor,
    redirect_url: str,
    reference_id: str = "",
    tags=(),
    client_name: str = "",
    contact: Contact | None = None,
    customer_info: dict | None = None,
    manufacturer_filters: dict | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> ConnectSession:
    """A new session and its link (valid CONNECT_LINK_TTL_HOURS). `contact` (Texture's `customerId`) takes
    priority over `customer_info`; a complete `customer_info` skips the details form. `manufacturer_filters`
    ({manufacturers: [slugs], deviceTypes: [...]}) narrows the picker; one manufacturer skips it."""
    try:
        URLValidator(schemes=["http", "https"])(redirect_url)
    except ValidationError as exc:
        raise ApplicationError("redirectUrl: an http(s) URL is required.", extra={"field": "redirectUrl"}) from exc
    if contact is not None:
        require_same_workspace(workspace.pk, contact)
        customer_info = {}
    filters = manufacturer_filters or {}
    manufacturers = [str(s) for s in filters.get("manufacturers") or []]
    device_types = [str(t) for t in filters.get("deviceTypes") or []]
    _manufacturer_channels(manufacturers)
    bad_types = sorted(set(device_types) - set(DeviceType.values))
    if bad_types:
        raise ApplicationError(
            f"manufacturerFilters.deviceTypes: unknown type {', '.join(bad_types)} (one of "
            f"{', '.join(DeviceType.values)}).",
            extra={"field": "manufacturerFilters"},
        )
    now = timezone.now()
    session = ConnectSession(
        workspace=workspace,
        public_id=uuid.uuid4(),
        redirect_url=redirect_url,
        reference_id=reference_id,
        tags=sorted({str(t) for t in tags}),
        client_name=client_name,
        contact=contact,
        customer_info=customer_info or {},
        manufacturer_filters={"manufacturers": manufacturers, "deviceTypes": device_types},
        expires_at=now + link_ttl(),
    )
    session.full_clean()
    session.save()
    audit_record(
        actor=actor,
        action=AuditAction.INTEGRATION_CHANGED,
        target=session,
        source=source,
        changes={"connect_session": "created", "contact": contact.pk if contact else None},
    )
    return session


# -- the hosted page's steps -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    label: str
    manufacturers: list[str]
    uses_oauth: bool
    fields: tuple[str, ...]  # what the customer enters when the OEM has no OAuth


def connect_channels(session: ConnectSession) -> list[ChannelChoice]:
    """The OEMs this customer may pick: the workspace's enabled integrations the portal has an adapter for,
    narrowed by the session's manufacturer filters."""
    from integrations.adapters import adapter_class
    from integrations.adapters.registry import ADAPTERS

    enabled = set(
        WorkspaceIntegration.objects.filter(
            workspace_id=session.workspace_id, enabled=True, channel__in=list(ADAPTERS)
        ).values_list("channel", flat=True)
    )
    filters = session.manufacturer_filters or {}
    if filters.get("manufacturers"):
        enabled &= _manufacturer_channels(filters["manufacturers"])
    catalog = Manufacturer.objects.filter(integration_channel__in=enabled).order_by("name")
    by_channel: dict[str, list[str]] = {}
    for manufacturer in catalog:
        types = set(manufacturer.device_types or [])
        if filters.get("deviceTypes") and not types & set(filters["deviceTypes"]):
            continue
        if filters.get("manufacturers") and not (
            manufacturer.slug in filters["manufacturers"]
            or set(manufacturer.aliases or []) & set(filters["manufacturers"])
            or manufacturer.slug == manufacturer.integration_channel
        ):
            continue
        by_channel.setdefault(manufacturer.integration_channel, []).append(manufacturer.name)
    return [
        ChannelChoice(
            channel=channel,
            label=str(IntegrationChannel(channel).label),
            manufacturers=names,
            uses_oauth=oauth.uses_oauth(channel),
            fields=() if oauth.uses_oauth(channel) else tuple(adapter_class(channel).required_credentials),
        )
        for channel, names in sorted(by_channel.items())
    ]


def connect_session_details(session: ConnectSession) -> dict:
    """What the details form starts from: what the customer confirmed, else the contact and its first site,
    else the session's `customerInfo`."""
    if session.customer_details:
        return dict(session.customer_details)
    if session.contact_id:
        contact = session.contact
        details = {name: getattr(contact, name) for name in CONTACT_DETAILS}
        site = Site.objects.filter(workspace_id=session.workspace_id, contact=contact).order_by("pk").first()
        details |= {name: getattr(site, name) if site else "" for name in SITE_DETAILS}
    else:
        details = customer_info_details(session.customer_info or {})
    details["country"] = details.get("country") or "US"
    return details


def _session_open(session: ConnectSession) -> ConnectSession:
    """The session locked, refused when it is already connected or its link expired."""
    locked = ConnectSession.objects.select_for_update().get(pk=session.pk)
    if locked.status == ConnectSessionStatus.CONNECTED:
        raise ApplicationError("This link was already used: the account is connected.")
    if locked.expires_at <= timezone.now():
        raise LinkExpired("This link has expired.")
    return locked


@transaction.atomic
def connect_session_details_save(*, session: ConnectSession, details: dict) -> ConnectSession:
    """The customer's confirmed name, contact details and address (checked by the page's form; written to the
    Contact and Site only when the connection succeeds)."""
    locked = _session_open(session)
    locked.customer_details = {k: str(details.get(k) or "").strip() for k in (*CONTACT_DETAILS, *SITE_DETAILS)}
    locked.customer_details["country"] = (locked.customer_details["country"] or "US").upper()
    locked.save(update_fields=["customer_details", "last_updated"])
    session.customer_details = locked.customer_details
    return locked


def _app_credentials(session: ConnectSession, channel: str) -> dict:
    """The workspace app's credentials (client id and secret, Enphase's key) for a customer's OAuth."""
    integration = WorkspaceIntegration.objects.filter(
        workspace_id=session.workspace_id, channel=channel, enabled=True
    ).first()
    app = {k: v for k, v in (integration.credentials if integration else {}).items() if k in oauth.APP_CREDENTIAL_KEYS}
    if not app.get("client_id") or not app.get("client_secret"):
        raise ApplicationError(
            f"{IntegrationChannel(channel).label} cannot be connected here yet: the workspace has no app "
            "credentials for it."
        )
    return app


@transaction.atomic
def connect_session_authorize(*, session: ConnectSession, channel: str, redirect_uri: str) -> str:
    """Start the trip to the OEM's consent page: a fresh `state` and PKCE verifier (kept encrypted on the
    session), the session `authorizing`. Returns the authorize URL to send the browser to."""
    if channel not in {c.channel for c in connect_channels(session) if c.uses_oauth}:
        raise ApplicationError("That manufacturer cannot be connected through this link.")
    locked = _session_open(session)
    url, state, verifier = oauth.authorization_start(
        channel=channel, app=_app_credentials(locked, channel), redirect_uri=redirect_uri
    )
    locked.channel = channel
    locked.oauth = {"state": state, "code_verifier": verifier, "redirect_uri": redirect_uri}
    locked.state_digest = _digest(state)
    locked.status = ConnectSessionStatus.AUTHORIZING
    locked.outcome = ""
    locked.save(update_fields=["channel", "oauth", "state_digest", "status", "outcome", "last_updated"])
    return url


def _session_end(session: ConnectSession, *, status: str, outcome: str) -> ConnectSession:
    """A denied or failed attempt: said on the session (and `connection.failed`); nothing else written. The
    customer may try again from the link while it lasts."""
    with transaction.atomic():
        locked = ConnectSession.objects.select_for_update().get(pk=session.pk)
        if locked.status == ConnectSessionStatus.CONNECTED:
            return locked
        locked.status, locked.outcome, locked.oauth = status, outcome[:500], {}
        locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "outcome", "oauth", "completed_at", "last_updated"])
        outbox.event_emit(
            workspace_id=locked.workspace_id,
            type=IntegrationEventType.CONNECTION_FAILED,
            key=f"connection.failed:{locked.public_id}:{uuid.uuid4().hex}",
            data=session_failed_data(locked),
        )
    return locked


def connect_session_callback(
    *, channel: str, state: str, code: str, error: str, error_description: str, browser_session: str
) -> ConnectSession:
    """The OEM sent the customer back. `browser_session`: the session id this browser was sent off with
    (a signed cookie), which the `state` must match.

    Refused (CallbackRefused, nothing written) when the `state` names no session in progress at this OEM or
    another browser's, or when the code was already exchanged (a replay). A denied consent, or a code the OEM
    refuses (reused, expired, PKCE mismatch), ends the session `denied` / `failed` with the reason. Otherwise
    the customer's devices are listed with the new tokens and everything is written at once (`_connect`).
    """
    session = None
    if state:
        session = ConnectSession.objects.filter(state_digest=_digest(state), channel=channel).first()
    if session is not None and session.status != ConnectSessionStatus.AUTHORIZING:
        raise CallbackRefused(
            "This sign-in was already used. Open your link again to see where your connection stands."
        )
    if session is None or str(session.public_id) != browser_session:
        raise CallbackRefused(
            "This sign-in does not match a connection started in this browser (state mismatch). Open your "
            "link again to start over."
        )
    with transaction.atomic():
        locked = ConnectSession.objects.select_for_update().get(pk=session.pk)
        secrets_ = locked.oauth
        if locked.status != ConnectSessionStatus.AUTHORIZING or not secrets_.get("code_verifier"):
            raise CallbackRefused(
                "This sign-in was already used. Open your link again to see where your connection stands."
            )
        if not hmac.compare_digest(secrets_.get("state", ""), state):
            raise CallbackRefused("This sign-in does not match the connection in progress (state mismatch).")
        if locked.expires_at <= timezone.now():
            raise LinkExpired("This link has expired.")
        # claimed: a second arrival with the same state (a replay, a double click) finds no verifier
        locked.oauth = {"redirect_uri": secrets_["redirect_uri"]}
        locked.save(update_fields=["oauth", "last_updated"])
    label = IntegrationChannel(channel).label
    if error:
        reason = "You declined" if error == "access_denied" else f"{label} answered {error!r}"
        return _session_end(
            locked,
            status=ConnectSessionStatus.DENIED if error == "access_denied" else ConnectSessionStatus.FAILED,
            outcome=f"{reason}: nothing was connected." + (f" ({error_description})" if error_description else ""),
        )
    if not code:
        return _session_end(locked, status=ConnectSessionStatus.FAILED, outcome=f"{label} sent no code back.")
    app = _app_credentials(locked, channel)
    try:
        tokens = oauth.code_exchange(
            channel=channel,
            app=app,
            redirect_uri=secrets_["redirect_uri"],
            code=code,
            code_verifier=secrets_["code_verifier"],
        )
    except oauth.ExchangeRefused as exc:
        return _session_end(
            locked,
            status=ConnectSessionStatus.FAILED,
            outcome=f"{label} refused the sign-in ({exc.message}): nothing was connected. Try again from your link.",
        )
    return _discover_and_connect(locked, channel=channel, credentials=tokens, app=app)


def connect_session_credentials_submit(*, session: ConnectSession, channel: str, credentials: dict) -> ConnectSession:
    """An OEM without OAuth: the customer's own credentials, checked by listing their devices with them, then
    stored encrypted on their connection (as the workspace's are on its integration)."""
    choice = next((c for c in connect_channels(session) if c.channel == channel and not c.uses_oauth), None)
    if choice is None:
        raise ApplicationError("That manufacturer cannot be connected through this link.")
    missing = [name for name in choice.fields if not str(credentials.get(name) or "").strip()]
    if missing:
        raise ApplicationError(f"Please fill in: {', '.join(missing)}.")
    with transaction.atomic():
        locked = _session_open(session)
        locked.channel, locked.status = channel, ConnectSessionStatus.AUTHORIZING
        locked.save(update_fields=["channel", "status", "last_updated"])
    values = {name: str(credentials[name]).strip() for name in choice.fields}
    return _discover_and_connect(locked, channel=channel, credentials=values, app={})


def _discover_and_connect(session: ConnectSession, *, channel: str, credentials: dict, app: dict) -> ConnectSession:
    from integrations.adapters import AuthError, IntegrationError, adapter_class

    label = IntegrationChannel(channel).label
    cls = adapter_class(channel)
    adapter = cls(
        credentials={**app, **credentials},
        base_url=settings.OEM_BASE_URLS[channel],
        timeout=settings.OEM_HTTP_TIMEOUT_SECONDS,
        pool_size=2,
    )
    try:
        found = adapter.discover(None)
    except AuthError as exc:
        return _session_end(
            session,
            status=ConnectSessionStatus.FAILED,
            outcome=f"{label} did not accept these credentials ({exc.message}): nothing was connected.",
        )
    except IntegrationError as exc:
        return _session_end(
            session,
            status=ConnectSessionStatus.FAILED,
            outcome=f"{label} could not list your devices ({exc.message}): nothing was connected. Try again later.",
        )
    finally:
        adapter.close()
    # a token the adapter refreshed on the way is the one that counts (rotating refresh tokens)
    stored = {k: v for k, v in adapter.credentials.items() if k not in app or k in credentials}
    return _connect(session, channel=channel, credentials=stored, found=found)


def _manufacturer_for(channel: str) -> Manufacturer:
    candidates = list(Manufacturer.objects.filter(integration_channel=channel).order_by("pk"))
    return next((m for m in candidates if m.slug == channel), candidates[0])


@transaction.atomic
def _connect(session: ConnectSession, *, channel: str, credentials: dict, found: list) -> ConnectSession:
    """Everything at once: the Contact and Site (through the fleet's services), the connection with its
    tokens, the devices linked (new ones registered then discovered: `device.discovered`), the session
    connected, `connection.connected`. A device of the same serial already bound elsewhere (the workspace's
    integration, another customer's connection) is left where it is, and the outcome says so."""
    locked = ConnectSession.objects.select_for_update().get(pk=session.pk)
    if locked.status == ConnectSessionStatus.CONNECTED:
        return locked
    details = locked.customer_details or connect_session_details(locked)
    workspace = locked.workspace
    source = AuditSource.SERVICE
    contact = locked.contact
    contact_data = {name: details.get(name, "") for name in CONTACT_DETAILS}
    if contact is None:
        reference = locked.reference_id or f"CX-{locked.public_id.hex[:10].upper()}"
        if Contact.objects.filter(workspace=workspace, reference_id=reference).exists():
            reference = f"CX-{locked.public_id.hex[:10].upper()}"
        contact = fleet_services.contact_create(
            workspace=workspace, actor=None, source=source, reference_id=reference, **contact_data
        )
    else:
        fleet_services.contact_update(
            contact=contact, data={k: v for k, v in contact_data.items() if v}, actor=None, source=source
        )
    address = {name: details.get(name, "") for name in SITE_DETAILS}
    site = Site.objects.filter(workspace=workspace, contact=contact).order_by("pk").first()
    if site is None:
        site = fleet_services.site_create(workspace=workspace, contact=contact, actor=None, source=source, **address)
    else:
        fleet_services.site_update(site=site, data=address, actor=None, source=source)

    connection, _ = CustomerConnection.objects.select_for_update().get_or_create(
        workspace=workspace, contact=contact, channel=channel
    )
    now = timezone.now()
    connection.credentials = credentials
    connection.status = ConnectionStatus.ACTIVE
    connection.revoked_at = None
    connection.last_error = ""
    connection.connected_at = now
    connection.reference_id = locked.reference_id
    connection.tags = locked.tags
    connection.save()

    linked, skipped = _devices_link(
        workspace=workspace, site=site, connection=connection, found=found, tags=locked.tags, source=source
    )

    locked.status = ConnectSessionStatus.CONNECTED
    locked.completed_at = now
    locked.contact = contact
    locked.connection = connection
    locked.devices_linked = len(linked)
    locked.oauth = {}
    locked.outcome = f"Connected: {len(linked)} device(s) linked." + (
        f" Already linked elsewhere, left as they are: {', '.join(skipped)}." if skipped else ""
    )
    locked.save()
    audit_record(
        actor=None,
        action=AuditAction.INTEGRATION_CHANGED,
        target=connection,
        source=source,
        changes={"connected": {"session": str(locked.public_id), "devices": linked}},
    )
    outbox.event_emit(
        workspace_id=workspace.pk,
        type=IntegrationEventType.CONNECTION_CONNECTED,
        key=f"connection.connected:{connection.pk}:{locked.public_id}",
        data=connection_data(connection, session=locked, device_ids=linked),
    )
    if linked:
        from integrations.tasks import connection_telemetry_sync_task

        transaction.on_commit(partial(connection_telemetry_sync_task.delay, connection.pk))
    return locked


def _devices_link(*, workspace, site, connection, found, tags, source) -> tuple[list[int], list[str]]:
    """Link the devices the customer's account lists to their connection: (device ids linked, serials left
    alone because another integration or connection has them). New serials are registered at the customer's
    site, then discovered (`device.discovered`); a Registered System of the same serial is discovered where
    it is; the connection's own devices are refreshed (and back on the workspace when offline)."""
    channel = connection.channel
    now = timezone.now()
    manufacturer = _manufacturer_for(channel)
    label = IntegrationChannel(channel).label
    linked, skipped = [], []
    for item in found:
        oem_data = {
            **item.oem_data,
            "kind": item.kind,
            "model": item.model,
            "firmware": item.firmware,
            CONNECTION_KEY: connection.pk,
        }
        device = (
            Device.objects.select_for_update()
            .filter(workspace=workspace, manufacturer__integration_channel=channel, system_identifier=item.serial)
            .first()
        )
        if device is None:
            device = fleet_services.device_register(
                workspace=workspace,
                site=site,
                manufacturer=manufacturer,
                system_identifier=item.serial,
                device_type=item.kind if item.kind in DeviceType.values else DeviceType.BATTERY,
                tags=tags,
                actor=None,
                source=source,
            )
        if device.state == DeviceState.REGISTERED:
            fleet_services.device_mark_discovered(
                device=device,
                oem_device_id=item.external_id,
                oem_data=oem_data,
                reason=f"Connected by the customer through {label} (Connect session).",
                grid_services_status=item.grid_services_status,
                source=source,
            )
        elif (device.oem_data or {}).get(CONNECTION_KEY) == connection.pk:
            # reconnected: the same connection's device, back with fresh tokens
            Device.objects.filter(pk=device.pk).update(
                oem_device_id=item.external_id[:200], oem_data=oem_data, last_updated=now
            )
            device.oem_data = oem_data
            if device.state == DeviceState.OFFLINE:
                fleet_services.device_mark_on_workspace(
                    device=device, reason=f"The customer connected their {label} account again.", source=source
                )
        else:
            skipped.append(item.serial)
            continue
        linked.append(device.pk)
    return linked, skipped


def connect_redirect_url(session: ConnectSession) -> str:
    """The integrator's `redirectUrl` with the outcome: status, the session and (when connected) the customer."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(session.redirect_url)
    params = [*parse_qsl(parts.query, keep_blank_values=True), ("status", session.status)]
    params.append(("sessionId", str(session.public_id)))
    if session.status == ConnectSessionStatus.CONNECTED:
        params += [("customerId", str(session.contact_id)), ("connectionId", str(session.connection_id))]
    return urlunsplit(parts._replace(query=urlencode(params)))


# -- a connection's life -------------------------------------------------------------------------------------------
def connection_adapter(connection: CustomerConnection, *, pool_size: int = 4):
    """An adapter speaking with the customer's tokens (and the workspace app's client credentials); its token
    refreshes go through the connection's row (`connection_tokens_refresh`)."""
    from integrations.adapters import adapter_class

    app = {}
    if oauth.uses_oauth(connection.channel):
        integration = WorkspaceIntegration.objects.filter(
            workspace_id=connection.workspace_id, channel=connection.channel
        ).first()
        app = {
            k: v for k, v in (integration.credentials if integration else {}).items() if k in oauth.APP_CREDENTIAL_KEYS
        }
    adapter = adapter_class(connection.channel)(
        credentials={**app, **connection.credentials},
        base_url=settings.OEM_BASE_URLS[connection.channel],
        timeout=settings.OEM_HTTP_TIMEOUT_SECONDS,
        pool_size=pool_size,
        credentials_store=partial(connection_tokens_refresh, connection=connection, app=app),
    )
    adapter.connection_app_keys = frozenset(app) - frozenset(connection.credentials)
    return adapter


def connection_tokens_refresh(*, connection: CustomerConnection, adapter, failed: str | None, app: dict) -> bool:
    """`integration_tokens_refresh` for a customer's connection: under the connection's row lock, adopt tokens
    another job stored, else refresh at the OEM (spending the rotating refresh token once) and store the new
    ones before the lock is released. A revoked connection is not refreshed."""
    from integrations.adapters import AuthError

    with transaction.atomic():
        row = CustomerConnection.objects.select_for_update().only("pk", "credentials", "status").get(pk=connection.pk)
        if row.status == ConnectionStatus.REVOKED:
            raise AuthError("The customer's connection is revoked.")
        stored = row.credentials
        if stored.get("access_token") and stored.get("access_token") != failed:
            adapter.adopt_tokens(stored)
            connection.credentials = stored
            return False
        tokens = adapter.request_tokens({**app, **stored})
        stored = {**stored, **tokens}
        CustomerConnection.objects.filter(pk=connection.pk).update(credentials=stored, last_updated=timezone.now())
    adapter.adopt_tokens(tokens)
    connection.credentials = stored
    return True


def connection_credentials_persist(*, connection: CustomerConnection, adapter) -> None:
    """Store what the adapter changed of the customer's credentials and has not stored yet (a sign-in token
    of an OEM without OAuth), key by key where the stored value is still the one loaded; never the app's keys."""
    app_keys = getattr(adapter, "connection_app_keys", frozenset())
    pending = {k: v for k, v in adapter.credentials_pending().items() if k not in app_keys}
    if not pending:
        return
    with transaction.atomic():
        row = CustomerConnection.objects.select_for_update().only("pk", "credentials").filter(pk=connection.pk).first()
        if row is None:
            return
        stored = row.credentials
        updates = {key: new for key, (loaded, new) in pending.items() if stored.get(key) == loaded}
        if updates:
            stored = {**stored, **updates}
            CustomerConnection.objects.filter(pk=connection.pk).update(credentials=stored)
    connection.credentials = stored
    adapter.credentials_saved()


def connection_devices(connection: CustomerConnection):
    return Device.objects.filter(
        workspace_id=connection.workspace_id, **{f"oem_data__{CONNECTION_KEY}": connection.pk}
    ).order_by("pk")


def connection_revoke(*, connection: CustomerConnection, reason: str, actor=None, source=AuditSource.TASK) -> bool:
    """The customer's grant is gone (the OEM refuses its tokens): the connection revoked with the reason, its
    devices offline with it (`device.disconnected`), `connection.revoked`. False when it already was."""
    with transaction.atomic():
        row = CustomerConnection.objects.select_for_update().get(pk=connection.pk)
        if row.status == ConnectionStatus.REVOKED:
            return False
        now = timezone.now()
        row.status, row.revoked_at, row.last_error = ConnectionStatus.REVOKED, now, reason[:2000]
        row.save(update_fields=["status", "revoked_at", "last_error", "last_updated"])
        device_ids = []
        for device in connection_devices(row).filter(state=DeviceState.ON_WORKSPACE):
            fleet_services.device_mark_offline(
                device=device,
                reason=f"The customer's {row.get_channel_display()} connection is revoked: {reason}"[:300],
            )
            device_ids.append(device.pk)
        audit_record(
            actor=actor, action=AuditAction.INTEGRATION_CHANGED, target=row, source=source, changes={"revoked": reason}
        )
        outbox.event_emit(
            workspace_id=row.workspace_id,
            type=IntegrationEventType.CONNECTION_REVOKED,
            key=f"connection.revoked:{row.pk}:{now.isoformat()}",
            data=connection_data(row, device_ids=device_ids),
        )
    connection.status, connection.revoked_at, connection.last_error = row.status, row.revoked_at, row.last_error
    return True


@dataclass
class ConnectionSyncOutcome:
    read: int
    failed: int
    readings_written: int
    revoked: bool = False
    error: str = ""


def connection_telemetry_sync(*, connection: CustomerConnection) -> ConnectionSyncOutcome:
    """Read the connection's devices' telemetry with the customer's tokens and ingest it. A refused grant
    (after a refresh) revokes the connection; a transient failure raises for the task to retry."""
    from integrations.adapters import AuthError, DeviceRef, IntegrationError

    if connection.status != ConnectionStatus.ACTIVE:
        return ConnectionSyncOutcome(0, 0, 0, error="not active")
    devices = list(connection_devices(connection).filter(state__in=[DeviceState.ON_WORKSPACE, DeviceState.OFFLINE]))
    if not devices:
        return ConnectionSyncOutcome(0, 0, 0)
    refs = {
        d.pk: DeviceRef(
            serial=d.system_identifier, external_id=d.oem_device_id, oem_data=d.oem_data, device_type=d.device_type
        )
        for d in devices
    }
    by_serial = {ref.serial: pk for pk, ref in refs.items()}
    adapter = connection_adapter(connection)
    try:
        results = adapter.fetch_telemetry_many(list(refs.values()))
    except AuthError as exc:
        connection_revoke(connection=connection, reason=exc.message)
        return ConnectionSyncOutcome(0, len(devices), 0, revoked=True, error=exc.message)
    except IntegrationError as exc:
        CustomerConnection.objects.filter(pk=connection.pk).update(last_error=exc.message[:2000])
        if exc.transient:
            raise
        return ConnectionSyncOutcome(0, len(devices), 0, error=exc.message)
    finally:
        connection_credentials_persist(connection=connection, adapter=adapter)
        adapter.close()
    readings, errors = [], {}
    for serial, result in results.items():
        if isinstance(result, IntegrationError):
            errors[by_serial[serial]] = result.message
        else:
            readings.append((by_serial[serial], result))
    result = fleet_services.telemetry_ingest(workspace_id=connection.workspace_id, readings=readings)
    fleet_services.devices_clear_sync_error(device_ids=[pk for pk, _ in readings])
    if errors:
        fleet_services.devices_record_sync_error(errors=errors)
    CustomerConnection.objects.filter(pk=connection.pk).update(last_synced_at=timezone.now(), last_error="")
    return ConnectionSyncOutcome(len(readings), len(errors), result.readings_written)


@contextmanager
def device_adapter(integration: WorkspaceIntegration, device):
    """The adapter that reaches `device`, for a command: its customer's connection's (their tokens) when it came
    through Texture Connect, else the workspace integration's kept adapter (`adapter_reused`). What the adapter
    changed of the credentials is stored to the right row after the block. A customer's grant the OEM refuses
    revokes their connection (its devices offline, `connection.revoked`)."""
    from integrations.adapters import AuthError, adapter_reused
    from integrations.services import integration_credentials_persist

    connection_id = (device.oem_data or {}).get(CONNECTION_KEY)
    if connection_id is None:
        with adapter_reused(integration) as adapter:
            try:
                yield adapter
            finally:
                integration_credentials_persist(integration=integration, adapter=adapter)
        return
    connection = CustomerConnection.objects.filter(pk=connection_id, workspace_id=device.workspace_id).first()
    if connection is None or connection.status != ConnectionStatus.ACTIVE:
        raise AuthError("The customer's connection to this device's OEM is revoked: they must connect again.")
    adapter = connection_adapter(connection, pool_size=2)
    try:
        yield adapter
    except AuthError as exc:
        connection_revoke(connection=connection, reason=exc.message)
        raise
    finally:
        connection_credentials_persist(connection=connection, adapter=adapter)
        adapter.close()


def connection_discover(*, connection: CustomerConnection) -> list[int]:
    """Devices the customer added to their OEM account since they connected (a second car), linked as at
    connect time at their first site. One listing call (Smartcar spends no VIN read on vehicles already
    linked). A refused grant revokes the connection. Returns the ids of the devices newly linked."""
    from integrations.adapters import AuthError

    if connection.status != ConnectionStatus.ACTIVE:
        return []
    known = connection_devices(connection)
    adapter = connection_adapter(connection)
    adapter.linked_external_ids = frozenset(known.values_list("oem_device_id", flat=True))
    try:
        found = adapter.discover(None)
    except AuthError as exc:
        connection_revoke(connection=connection, reason=exc.message)
        return []
    finally:
        connection_credentials_persist(connection=connection, adapter=adapter)
        adapter.close()
    linked_serials = set(known.values_list("system_identifier", flat=True))
    new = [item for item in found if item.serial not in linked_serials]
    if not new:
        return []
    with transaction.atomic():
        site = Site.objects.filter(workspace_id=connection.workspace_id, contact_id=connection.contact_id).order_by(
            "pk"
        )
        if not site.exists():
            return []
        linked, _ = _devices_link(
            workspace=connection.workspace,
            site=site.first(),
            connection=connection,
            found=new,
            tags=connection.tags,
            source=AuditSource.TASK,
        )
    return linked
