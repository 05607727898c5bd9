"""The project's own emulation of the OEM clouds: stateful devices, a steerable clock, fault injection.

state = SimState(); state.load_fleet_csv(path); demo_accounts(state)
with SimulatorServer(state) as sim: ...   # sim.url, sim.base_urls()
"""

from integrations.simulator.server import SimulatorServer
from integrations.simulator.state import SimClock, SimState

# The accounts `make demo` and the demo seed use (simulator-only secrets, never real ones).
DEMO_CREDENTIALS = {
    "tesla": {"client_id": "demo", "client_secret": "demo-tesla-secret", "refresh_token": "demo-tesla-refresh"},
    "franklinwh": {"account": "demo", "password": "demo-franklin-password"},
    "enphase": {
        "client_id": "demo",
        "client_secret": "demo-enphase-secret",
        "api_key": "demo-enphase-key",
        "refresh_token": "demo-enphase-refresh",
    },
    "solaredge": {"api_key": "demo-solaredge-key"},
    "emporia": {"username": "demo", "password": "demo-emporia-password"},
    "chargepoint": {"username": "demo", "password": "demo-chargepoint-password"},
    "smartcar": {
        "client_id": "demo",
        "client_secret": "demo-smartcar-secret",
        "refresh_token": "demo-smartcar-refresh",
    },
}


def add_accounts(state: SimState, name: str = "demo", credentials: dict | None = None) -> dict:
    """Create `name`'s account at every simulated OEM; returns the credentials the portal should store."""
    credentials = credentials or DEMO_CREDENTIALS
    for oem, creds in credentials.items():
        secret = creds.get("client_secret") or creds.get("password") or creds.get("api_key")
        account = state.add_account(oem, name, secret, api_key=creds.get("api_key", "") if oem == "enphase" else "")
        if "refresh_token" in creds:
            account.refresh_token = creds["refresh_token"]
    return credentials


__all__ = ["DEMO_CREDENTIALS", "SimClock", "SimState", "SimulatorServer", "add_accounts"]
