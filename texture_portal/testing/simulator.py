"""pytest helpers for the OEM simulator: a running simulator with the given devices and demo accounts, and
adapters / integrations pointed at it."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

from integrations.simulator import DEMO_CREDENTIALS, SimClock, SimState, SimulatorServer, add_accounts


@contextmanager
def running_simulator(*, frozen_at: datetime | None = None, seed: int = 7):
    """A simulator on 127.0.0.1:<free port> with the demo accounts and a frozen clock (default: now,
    to the minute). Yields the server; its `state` is steered directly."""
    frozen_at = frozen_at or datetime.now(UTC).replace(second=0, microsecond=0)
    state = SimState(clock=SimClock(frozen_at=frozen_at), seed=seed)
    add_accounts(state)
    with SimulatorServer(state) as server:
        yield server


def demo_credentials(channel: str) -> dict:
    return dict(DEMO_CREDENTIALS[channel])
