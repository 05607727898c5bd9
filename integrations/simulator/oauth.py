"""The OEMs' OAuth side, simulated: a customer signs in at the OEM and lets an app (a workspace's client id) read
and control their devices (RFC 6749 authorization-code grant, with PKCE, RFC 7636, S256 only).

- `GET <authorize path>`: the OEM's sign-in and consent page (a plain form: login, password, Allow / Deny);
  `POST` the same path: Allow sends the browser to `redirect_uri?code=…&state=…`, Deny to
  `redirect_uri?error=access_denied&state=…`, as the OEMs do.
- `POST <token path>` with `grant_type=authorization_code`: the code (single use, 10 minutes, bound to its
  client, redirect URI and PKCE challenge) for a grant's tokens. A code presented twice is refused and the
  grant issued from it revoked (RFC 6749 §4.1.2). `grant_type=refresh_token` with a grant's refresh token
  rotates it (the old one is spent). Other refresh tokens are the workspace apps' own: the OEM module answers.
- A customer is an account of their own at the OEM (`customer_add`), owning their devices: a grant's access
  tokens are issued on that account, so every OEM module's API already shows each customer only their
  devices (Smartcar's `GET /vehicles` lists the vehicles of the token's user).
- `grants_revoke` (and `POST /_sim/revoke {oem, user}`): the customer withdrew consent; their tokens stop
  working at once and a refresh is refused with `invalid_grant`.

Paths and client authentication per OEM (`OAUTH_OEMS`) follow docs/oem-apis.md: Smartcar and Enphase take
the client's credentials as HTTP Basic, Tesla in the form.
"""

from __future__ import annotations

import base64
import html
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import SimAccount, SimState

CODE_TTL = timedelta(minutes=10)
OAUTH_OEMS = {
    "smartcar": {"authorize": "/oauth/authorize", "token": "/oauth/token", "name": "Smartcar Connect"},
    "tesla": {"authorize": "/oauth2/v3/authorize", "token": "/oauth2/v3/token", "name": "Tesla"},
    "enphase": {"authorize": "/oauth/authorize", "token": "/oauth/token", "name": "Enphase Enlighten"},
}


@dataclass
class SimGrant:
    """A customer's consent to one app: its current refresh token, and whether it was revoked."""

    oem: str
    client: str
    user: str
    scope: str
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    revoked: bool = False
    access_tokens: list[str] = field(default_factory=list)


@dataclass
class SimAuthCode:
    oem: str
    client: str
    user: str
    redirect_uri: str
    code_challenge: str
    scope: str
    expires_at: datetime
    used: bool = False
    grant: SimGrant | None = None


# -- building ------------------------------------------------------------------------------------------------
def customer_add(state: SimState, oem: str, login: str, password: str) -> SimAccount:
    """A customer's own account at an OEM (devices added with `account=login` are theirs)."""
    return state.add_account(oem, login, password)


def grants_revoke(state: SimState, oem: str, user: str) -> int:
    """The customer revoked every grant of theirs at the OEM: tokens dead, refresh refused. Returns how many."""
    with state.lock:
        grants = [g for g in state.oauth_grants.values() if g.oem == oem and g.user == user and not g.revoked]
        for grant in grants:
            _revoke(state, grant)
        return len(grants)


def _revoke(state: SimState, grant: SimGrant) -> None:
    grant.revoked = True
    account = state.account(grant.oem, grant.user)
    if account is not None:
        for token in grant.access_tokens:
            account.tokens.pop(token, None)


# -- HTTP ----------------------------------------------------------------------------------------------------
def handle(state: SimState, oem: str, request: SimRequest) -> SimResponse | None:
    """The OAuth answer for this request, or None when it is the OEM module's (its API, its app tokens)."""
    paths = OAUTH_OEMS.get(oem)
    if paths is None:
        return None
    if request.path == paths["authorize"] and request.method == "GET":
        return authorize_page(state, oem, request.query)
    if request.path == paths["authorize"] and request.method == "POST":
        return authorize_decide(state, oem, request.form())
    if request.path == paths["token"] and request.method == "POST":
        form = request.form()
        if form.get("grant_type") == "authorization_code":
            return code_exchange(state, oem, request, form)
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") in state.oauth_grants:
            return grant_refresh(state, oem, request, form)
    return None


AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge")


def _authorize_error(query: dict) -> str | None:
    if query.get("response_type") != "code":
        return "response_type must be code."
    for name in ("client_id", "redirect_uri", "state", "code_challenge"):
        if not query.get(name):
            return f"{name} is required."
    if query.get("code_challenge_method", "plain") != "S256":
        return "code_challenge_method must be S256."
    return None


def authorize_page(state: SimState, oem: str, query: dict, *, error: str = "") -> SimResponse:
    problem = _authorize_error(query)
    client = state.account(oem, query.get("client_id", ""))
    if problem is None and client is None:
        problem = f"Unknown client_id {query.get('client_id')!r}."
    if problem:
        return _page(400, f"{OAUTH_OEMS[oem]['name']}: bad request", f'<p class="error">{html.escape(problem)}</p>')
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
        for name in (*AUTHORIZE_PARAMS, "code_challenge_method")
    )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in query.get("scope", "").split())
    body = f"""
<p>Sign in to let <strong>{html.escape(query["client_id"])}</strong> reach your devices.</p>
{f'<p class="error" id="sim-error">{html.escape(error)}</p>' if error else ""}
<form method="post" id="sim-consent">
  {hidden}
  <label>Login <input name="username" id="sim-username" autocomplete="username"></label>
  <label>Password <input name="password" id="sim-password" type="password" autocomplete="current-password"></label>
  <p>It asks for:</p><ul>{scopes or "<li>access to your devices</li>"}</ul>
  <button name="decision" value="allow" id="sim-allow">Allow</button>
  <button name="decision" value="deny" id="sim-deny" formnovalidate>Deny</button>
</form>"""
    return _page(200, f"{OAUTH_OEMS[oem]['name']}: sign in", body)


def authorize_decide(state: SimState, oem: str, form: dict) -> SimResponse:
    query = {name: form.get(name, "") for name in (*AUTHORIZE_PARAMS, "code_challenge_method")}
    if _authorize_error(query) or state.account(oem, query["client_id"]) is None:
        return authorize_page(state, oem, query)
    if form.get("decision") != "allow":
        return _redirect(
            query["redirect_uri"],
            {"error": "access_denied", "error_description": "The user denied access.", "state": query["state"]},
        )
    user = state.account(oem, form.get("username", ""))
    if user is None or user.secret != form.get("password") or user.name == query["client_id"]:
        return authorize_page(state, oem, query, error="Wrong login or password.")
    code = secrets.token_urlsafe(24)
    with state.lock:
        state.oauth_codes[code] = SimAuthCode(
            oem=oem,
            client=query["client_id"],
            user=user.name,
            redirect_uri=query["redirect_uri"],
            code_challenge=query["code_challenge"],
            scope=query["scope"],
            expires_at=state.clock.now() + CODE_TTL,
        )
    return _redirect(query["redirect_uri"], {"code": code, "state": query["state"]})


def _client(state: SimState, oem: str, request: SimRequest, form: dict, *, public: bool = False) -> SimAccount | None:
    """The app, authenticated by HTTP Basic (Smartcar, Enphase) or `client_id`/`client_secret` in the form.
    `public`: a refresh may name the client without its secret (Tesla's refresh sends `client_id` only)."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            client_id, secret = base64.b64decode(header[6:]).decode().split(":", 1)
        except ValueError:
            return None
    account = state.account(oem, client_id)
    if account is None or (secret and account.secret != secret) or (not secret and not public):
        return None
    return account


def _oauth_error(status: int, error: str, description: str) -> SimResponse:
    return SimResponse(status, {"error": error, "error_description": description})


def code_exchange(state: SimState, oem: str, request: SimRequest, form: dict) -> SimResponse:
    client = _client(state, oem, request, form)
    if client is None:
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    with state.lock:
        code = state.oauth_codes.get(form.get("code", ""))
        if code is None or code.oem != oem or code.client != client.name:
            return _oauth_error(400, "invalid_grant", "Unknown authorization code.")
        if code.used:
            if code.grant is not None:
                _revoke(state, code.grant)  # a replayed code may be stolen: what it gave is withdrawn
            return _oauth_error(400, "invalid_grant", "Authorization code already used.")
        code.used = True
        if code.expires_at <= state.clock.now():
            return _oauth_error(400, "invalid_grant", "Authorization code expired.")
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request.")
        verifier = form.get("code_verifier", "")
        if not verifier or create_s256_code_challenge(verifier) != code.code_challenge:
            return _oauth_error(400, "invalid_grant", "PKCE verification failed (code_verifier).")
        user = state.account(oem, code.user)
        if client.api_key and not user.api_key:
            user.api_key = client.api_key  # Enphase: the app's key goes with the user's token
        grant = SimGrant(oem=oem, client=client.name, user=code.user, scope=code.scope)
        code.grant = grant
        state.oauth_grants[grant.refresh_token] = grant
        return _tokens(state, grant, user)


def grant_refresh(state: SimState, oem: str, request: SimRequest, form: dict) -> SimResponse:
    client = _client(state, oem, request, form, public=True)
    if client is None:
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    with state.lock:
        grant = state.oauth_grants.get(form["refresh_token"])
        if grant is None or grant.client != client.name or grant.oem != oem:
            return _oauth_error(400, "invalid_grant", "Invalid refresh token.")
        if grant.revoked:
            return _oauth_error(400, "invalid_grant", "The user revoked access.")
        if form["refresh_token"] != grant.refresh_token:
            return _oauth_error(400, "invalid_grant", "Refresh token already used.")
        grant.refresh_token = secrets.token_urlsafe(24)  # rotated: the old one is kept, spent, to refuse it
        state.oauth_grants[grant.refresh_token] = grant
        return _tokens(state, grant, state.account(oem, grant.user))


def _tokens(state: SimState, grant: SimGrant, user: SimAccount) -> SimResponse:
    access = user.issue_token(state.clock.now(), state.token_ttl)
    grant.access_tokens.append(access)
    return SimResponse(
        200,
        {
            "access_token": access,
            "refresh_token": grant.refresh_token,
            "expires_in": int(state.token_ttl.total_seconds()),
            "token_type": "Bearer",
            "scope": grant.scope,
        },
    )


def _redirect(url: str, params: dict) -> SimResponse:
    location = url + ("&" if "?" in url else "?") + urlencode(params)
    return SimResponse(302, b"", {"Location": location}, content_type="text/plain")


def _page(status: int, title: str, body: str) -> SimResponse:
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
label{{display:block;margin:.5rem 0}}input{{display:block;width:100%;padding:.4rem}}
button{{padding:.5rem 1.2rem;margin-right:.5rem}}.error{{color:#b00020}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return SimResponse(status, page, content_type="text/html; charset=utf-8")


# -- the demo's connected driver -----------------------------------------------------------------------------------
# A driver of the demo co-op who connected their own Smartcar account through Texture Connect (the demo seed runs
# the session against an in-process simulator). `make serve`'s simulator is a fresh process: it knows the driver's
# account, vehicle and a standing grant with this refresh token, which the seed stores for the connection (as it
# resets the workspace integrations' credentials after its rehearsal). Simulator-only secrets, never real ones.
DEMO_DRIVER = {
    "oem": "smartcar",
    "client": "demo",
    "login": "maria.okafor@example.com",
    "password": "demo-driver-password",
    "refresh_token": "demo-driver-smartcar-refresh",
    "vin": "1HGCM82633A004352",
}


def demo_customers_add(state: SimState) -> None:
    """The demo driver's Smartcar account, their vehicle and their standing grant to the demo app."""
    driver = DEMO_DRIVER
    if state.account(driver["oem"], driver["login"]) is None:
        customer_add(state, driver["oem"], driver["login"], driver["password"])
    if state.device(driver["oem"], driver["vin"]) is None:
        # a fixed number (its id, veh-1900), whatever else the simulator holds: the seed connects it against a
        # simulator of its own, and `make serve`'s, which also holds the demo fleet's vehicles, must know it by
        # the same id
        state.add_device(
            driver["oem"], driver["vin"], kind="vehicle", account=driver["login"], plugged_in=True, number=900
        )
    with state.lock:
        if driver["refresh_token"] not in state.oauth_grants:
            grant = SimGrant(
                oem=driver["oem"],
                client=driver["client"],
                user=driver["login"],
                scope="read_vehicle_info read_vin read_battery read_charge control_charge",
                refresh_token=driver["refresh_token"],
            )
            state.oauth_grants[grant.refresh_token] = grant
