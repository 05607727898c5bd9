"""The demo's Texture Connect session: a driver of the co-op connects their own Smartcar account, driven through
the same services as the hosted page (details → Smartcar → consent → back), against an in-process simulator,
so `make demo` shows a device that came in through Connect, its connection and its session on the customer page.
Idempotent: a driver already connected is left as they are."""

from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.urls import reverse

from integrations.simulator import oauth as sim_oauth

DEMO_DRIVER_INFO = {
    "firstName": "Maria",
    "lastName": "Okafor",
    "email": sim_oauth.DEMO_DRIVER["login"],
    "phone": "+15415550147",
    "location": {
        "streetOne": "88 Ponderosa Dr",
        "city": "Bend",
        "state": "OR",
        "postalCode": "97702",
        "country": "US",
    },
}
DEMO_DRIVER_REFERENCE = "EV-7731"


def demo_driver_connect(*, workspace, actor) -> str:
    """Run the demo driver's Connect session; returns a line for the seed's log."""
    from integrations.choices import ConnectSessionStatus
    from integrations.connect import services as connect
    from integrations.models import CustomerConnection
    from integrations.ratelimit import rate_limiter
    from integrations.simulator import SimState, SimulatorServer, add_accounts
    from texture_portal.choices import AuditSource

    driver = sim_oauth.DEMO_DRIVER
    existing = CustomerConnection.objects.filter(
        workspace=workspace, channel=driver["oem"], contact__reference_id=DEMO_DRIVER_REFERENCE
    ).first()
    if existing is not None:
        return "Connect: the demo driver's Smartcar account is already connected."
    state = SimState()
    add_accounts(state)
    sim_oauth.demo_customers_add(state)
    saved = {name: getattr(settings, name) for name in ("OEM_BASE_URLS", "OEM_RATE_LIMIT_REDIS_URL")}
    with SimulatorServer(state) as server:
        try:
            settings.OEM_BASE_URLS = server.base_urls()
            settings.OEM_RATE_LIMIT_REDIS_URL = None
            rate_limiter.cache_clear()
            session = connect.connect_session_create(
                workspace=workspace,
                actor=actor,
                redirect_url=settings.PORTAL_BASE_URL + reverse("connect:done"),
                reference_id=DEMO_DRIVER_REFERENCE,
                tags=["ev-pilot"],
                client_name="Timber Ridge EV Rewards",
                customer_info=DEMO_DRIVER_INFO,
                manufacturer_filters={"manufacturers": ["smartcar"]},
                source=AuditSource.COMMAND,
            )
            # the page's steps: details (complete customerInfo), Smartcar (the only one), its consent page
            connect.connect_session_details_save(
                session=session, details=connect.customer_info_details(DEMO_DRIVER_INFO)
            )
            callback = settings.PORTAL_BASE_URL + reverse("connect:callback", args=[driver["oem"]])
            authorize = connect.connect_session_authorize(session=session, channel=driver["oem"], redirect_uri=callback)
            query = {k: v[-1] for k, v in parse_qs(urlsplit(authorize).query).items()}
            form = {**query, "username": driver["login"], "password": driver["password"], "decision": "allow"}
            consent = requests.post(authorize.split("?")[0], data=form, allow_redirects=False, timeout=10)
            back = {k: v[-1] for k, v in parse_qs(urlsplit(consent.headers["Location"]).query).items()}
            session = connect.connect_session_callback(
                channel=driver["oem"],
                state=back.get("state", ""),
                code=back.get("code", ""),
                error=back.get("error", ""),
                error_description=back.get("error_description", ""),
                browser_session=str(session.public_id),
            )
        finally:
            for name, value in saved.items():
                setattr(settings, name, value)
            rate_limiter.cache_clear()
    if session.status != ConnectSessionStatus.CONNECTED:
        return f"Connect: the demo driver's session ended {session.status}: {session.outcome}"
    # `make serve` starts a fresh simulator, which knows the driver's standing grant (not this one's tokens)
    CustomerConnection.objects.filter(pk=session.connection_id).update(
        credentials={"refresh_token": driver["refresh_token"]}
    )
    return (
        f"Connect: {DEMO_DRIVER_INFO['firstName']} {DEMO_DRIVER_INFO['lastName']} connected their Smartcar "
        f"account ({session.outcome})"
    )
