"""The simulator's OAuth side with the portal's client (Authlib) for Tesla (client secret in the form) and
Enphase (HTTP Basic, the app's key beside the customer's token): consent, PKCE-verified exchange, a wrong
verifier refused, and the customer's token reaching only the customer's own devices."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.adapters import adapter_class
from integrations.connect import oauth
from integrations.simulator import oauth as sim_oauth
from texture_portal.testing.simulator import demo_credentials

REDIRECT = "https://portal.example/connect/callback/x"


def consent(url: str, login: str, password: str) -> dict:
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = requests.post(
        url.split("?")[0],
        data={**query, "username": login, "password": password, "decision": "allow"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    return {k: v[-1] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


@pytest.mark.parametrize(
    ("channel", "kind", "serial"), [("tesla", "battery", "TG1CUSTOMER0001"), ("enphase", "battery", "EN00CUSTOMER01")]
)
def test_a_customer_consents_and_their_token_reaches_only_their_devices(sim, channel, kind, serial):
    sim_oauth.customer_add(sim.state, channel, "owner@example.com", "owner-pw")
    sim.state.add_device(channel, serial, kind=kind, account="owner@example.com")
    sim.state.add_device(channel, serial + "X", kind=kind)  # the app account's own
    app = demo_credentials(channel)
    url, state, verifier = oauth.authorization_start(channel=channel, app=app, redirect_uri=REDIRECT)
    assert "code_challenge_method=S256" in url and f"state={state}" in url
    back = consent(url, "owner@example.com", "owner-pw")
    assert back["state"] == state

    tokens = oauth.code_exchange(
        channel=channel, app=app, redirect_uri=REDIRECT, code=back["code"], code_verifier=verifier
    )

    credentials = {**{k: v for k, v in app.items() if k in oauth.APP_CREDENTIAL_KEYS}, **tokens}
    adapter = adapter_class(channel)(credentials=credentials, base_url=f"{sim.url}/{channel}", timeout=2)
    with adapter:
        assert [d.serial for d in adapter.discover([serial])] == [serial]
    # the code is single use
    with pytest.raises(oauth.ExchangeRefused, match="already used"):
        oauth.code_exchange(channel=channel, app=app, redirect_uri=REDIRECT, code=back["code"], code_verifier=verifier)


def test_a_wrong_verifier_or_redirect_uri_is_refused(sim):
    sim_oauth.customer_add(sim.state, "smartcar", "driver@example.com", "pw")
    app = demo_credentials("smartcar")
    for wrong in ({"code_verifier": "x" * 64}, {"redirect_uri": "https://elsewhere.example/cb"}):
        url, _, verifier = oauth.authorization_start(channel="smartcar", app=app, redirect_uri=REDIRECT)
        code = consent(url, "driver@example.com", "pw")["code"]
        arguments = {"redirect_uri": REDIRECT, "code_verifier": verifier, **wrong}
        with pytest.raises(oauth.ExchangeRefused, match="invalid_grant"):
            oauth.code_exchange(channel="smartcar", app=app, code=code, **arguments)


def test_the_consent_page_refuses_a_request_without_pkce(sim):
    answer = requests.get(
        f"{sim.url}/smartcar/oauth/authorize",
        params={"response_type": "code", "client_id": "demo", "redirect_uri": REDIRECT, "state": "s"},
        timeout=5,
    )
    assert answer.status_code == 400 and "code_challenge is required" in answer.text
