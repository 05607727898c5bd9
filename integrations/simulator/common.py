"""Pieces every simulated OEM uses: routing, bearer tokens, and the transport-level faults."""

import re
from collections.abc import Callable

from integrations.simulator.server import SimRequest, SimResponse
from integrations.simulator.state import Fault, SimState


class Router:
    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, Callable]] = []

    def route(self, method: str, pattern: str):
        def register(view):
            self.routes.append((method, re.compile(f"^{pattern}$"), view))
            return view

        return register

    def match(self, request: SimRequest):
        for method, pattern, view in self.routes:
            found = pattern.match(request.path)
            if found and method == request.method:
                return view, found.groupdict()
        return None, {}


def transport_fault(fault: Fault | None) -> SimResponse | None:
    """Faults that look the same at every OEM: a stall past the client's timeout, a dropped connection."""
    if fault is None:
        return None
    if fault.kind == "slow":
        return SimResponse(200, {}, delay=float(fault.params.get("seconds", 15)), drop=True)
    if fault.kind == "drop":
        return SimResponse(drop=True)
    return None


def token_fault(state: SimState, oem: str, account) -> Fault | None:
    """A fault injected for the account's token endpoint (target `<account>:token`; faults injected for the
    account itself are for its API calls, so a test can let the refresh work and the call after it fail)."""
    return state.take_fault(oem, f"{account.name}:token")


def bearer(request: SimRequest) -> str:
    value = request.headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


def token_account(state: SimState, oem: str, token: str):
    """(account, expired) for a bearer token, or (None, False) when nobody issued it."""
    now = state.clock.now()
    for account in state.accounts.values():
        if account.oem == oem and token in account.tokens:
            return account, account.tokens[token] <= now
    return None, False


def rotate_refresh(state: SimState, account, presented: str) -> str | None:
    """Refresh-token rotation: the presented token must be the current one; it is then spent (atomically:
    two concurrent refreshes with one token get one new token and one refusal, as at the OEM)."""
    import secrets

    with state.lock:
        if presented != account.refresh_token or presented in account.used_refresh_tokens:
            return None
        account.used_refresh_tokens.add(presented)
        account.refresh_token = secrets.token_urlsafe(24)
        return account.refresh_token


def expire_tokens(account) -> None:
    for token in account.tokens:
        account.tokens[token] = account.tokens[token].replace(year=2000)
