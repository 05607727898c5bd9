"""The portal as an OAuth client of the OEMs' customer consent (authorization code with PKCE and `state`),
through Authlib's requests client (`OAuth2Session`): the authorize URL, and the code exchanged for the
customer's tokens. Paths and client authentication per OEM as in docs/oem-apis.md; the base URLs are the
adapters' (`OEM_BASE_URLS`: the simulator by default), each overridable with `OEM_CONNECT_AUTHORIZE_URLS` and
`OEM_CONNECT_TOKEN_URLS` (the real OEMs sign customers in on another host than their API's)."""

from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings


@dataclass(frozen=True)
class OAuthProvider:
    authorize_path: str
    token_path: str
    auth_method: str  # how the app authenticates at the token endpoint
    scope: str


OAUTH_PROVIDERS = {
    # Smartcar Connect: the permissions the adapter's reads and commands need
    "smartcar": OAuthProvider(
        "/oauth/authorize",
        "/oauth/token",
        "client_secret_basic",
        "read_vehicle_info read_vin read_battery read_charge control_charge",
    ),
    # offline_access for a refresh token; the energy scopes for Powerwalls
    "tesla": OAuthProvider(
        "/oauth2/v3/authorize",
        "/oauth2/v3/token",
        "client_secret_post",
        "openid offline_access energy_device_data energy_cmds",
    ),
    "enphase": OAuthProvider("/oauth/authorize", "/oauth/token", "client_secret_basic", ""),
}
# The app's credentials (the workspace integration's) an adapter needs beside a customer's tokens.
APP_CREDENTIAL_KEYS = ("client_id", "client_secret", "api_key", "unit_system")


class ExchangeRefused(Exception):
    """The OEM refused the code (used, expired, PKCE mismatch…) or could not be reached."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient


def uses_oauth(channel: str) -> bool:
    return channel in OAUTH_PROVIDERS


def authorize_url_base(channel: str) -> str:
    override = getattr(settings, "OEM_CONNECT_AUTHORIZE_URLS", {}).get(channel)
    return override or settings.OEM_BASE_URLS[channel].rstrip("/") + OAUTH_PROVIDERS[channel].authorize_path


def token_url(channel: str) -> str:
    override = getattr(settings, "OEM_CONNECT_TOKEN_URLS", {}).get(channel)
    return override or settings.OEM_BASE_URLS[channel].rstrip("/") + OAUTH_PROVIDERS[channel].token_path


def _session(channel: str, app: dict, redirect_uri: str) -> OAuth2Session:
    provider = OAUTH_PROVIDERS[channel]
    return OAuth2Session(
        client_id=app.get("client_id"),
        client_secret=app.get("client_secret"),
        token_endpoint_auth_method=provider.auth_method,
        scope=provider.scope or None,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        default_timeout=settings.OEM_HTTP_TIMEOUT_SECONDS,
    )


def authorization_start(*, channel: str, app: dict, redirect_uri: str) -> tuple[str, str, str]:
    """(authorize URL, state, PKCE code verifier): a fresh random `state` and verifier (RFC 7636: 43–128
    characters) for one trip to the OEM."""
    state, verifier = generate_token(32), generate_token(64)
    with _session(channel, app, redirect_uri) as client:
        url, _ = client.create_authorization_url(authorize_url_base(channel), state=state, code_verifier=verifier)
    return url, state, verifier


def code_exchange(*, channel: str, app: dict, redirect_uri: str, code: str, code_verifier: str) -> dict:
    """The customer's tokens for the code ({access_token, refresh_token}); ExchangeRefused otherwise."""
    try:
        with _session(channel, app, redirect_uri) as client:
            token = client.fetch_token(token_url(channel), code=code, code_verifier=code_verifier)
    except OAuthError as exc:
        reason = exc.error + (f" ({exc.description})" if exc.description else "")
        raise ExchangeRefused(reason) from exc
    except (requests.RequestException, ValueError) as exc:
        raise ExchangeRefused(f"the manufacturer could not be reached ({type(exc).__name__})", transient=True) from exc
    if not token.get("access_token") or not token.get("refresh_token"):
        raise ExchangeRefused("the manufacturer's answer had no tokens")
    return {"access_token": token["access_token"], "refresh_token": token["refresh_token"]}
