"""Adapter classes by integration channel, and building one for a workspace integration."""

import hashlib
import json
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from functools import partial

from django.conf import settings
from django.utils.module_loading import import_string

ADAPTERS = {
    "tesla": "integrations.tesla.adapter.TeslaAdapter",
    "franklinwh": "integrations.franklinwh.adapter.FranklinWHAdapter",
    "enphase": "integrations.enphase.adapter.EnphaseAdapter",
    "solaredge": "integrations.solaredge.adapter.SolarEdgeAdapter",
    "emporia": "integrations.emporia.adapter.EmporiaAdapter",
    "chargepoint": "integrations.chargepoint.adapter.ChargePointAdapter",
    "smartcar": "integrations.smartcar.adapter.SmartcarAdapter",
}


def adapter_class(channel: str):
    try:
        return import_string(ADAPTERS[channel])
    except KeyError:
        from integrations.adapters.base import NotSupported

        raise NotSupported(f"No adapter for the “{channel}” channel yet.") from None


def adapter_for(integration, *, pool_size: int = 16):
    """An adapter for a WorkspaceIntegration, pointed at the OEM base URL from settings. Its token refreshes
    go through the integration's row (`integration_tokens_refresh`), so concurrent jobs refresh once."""
    from integrations.services import integration_tokens_refresh

    cls = adapter_class(integration.channel)
    return cls(
        credentials=integration.credentials,
        base_url=settings.OEM_BASE_URLS[integration.channel],
        timeout=settings.OEM_HTTP_TIMEOUT_SECONDS,
        pool_size=pool_size,
        credentials_store=partial(integration_tokens_refresh, integration=integration),
    )


# -- adapters kept between jobs -------------------------------------------------------------------------------

ADAPTER_IDLE_SECONDS = 300  # an adapter unused this long is closed (its pooled connections may be stale)
ADAPTERS_PER_THREAD = 32
_kept = threading.local()


def _kept_key(integration) -> tuple:
    credentials = json.dumps(integration.credentials, sort_keys=True, default=str).encode()
    base_url = settings.OEM_BASE_URLS[integration.channel]
    return integration.pk, integration.channel, base_url, hashlib.sha256(credentials).hexdigest()


@contextmanager
def adapter_reused(integration):
    """An adapter for the integration that this thread keeps between calls, so a worker sending thousands of
    commands keeps its HTTP connections and signed-in tokens instead of building both for every command.

    Kept per thread (a `requests` session is not shared across threads), for ADAPTER_IDLE_SECONDS, and only
    while the integration's stored credentials and the OEM's base URL are those it was built with: staff
    entering a new secret gets a new adapter; tokens the adapter refreshed itself re-key it. An adapter that
    raised anything but an OEM's answer (`IntegrationError`) is closed, not kept. Callers store what the
    adapter changed (`integration_credentials_persist`), as with `adapter_for`."""
    kept: OrderedDict = _kept.__dict__.setdefault("adapters", OrderedDict())
    now = time.monotonic()
    for key, (_, used_at) in list(kept.items()):
        if now - used_at > ADAPTER_IDLE_SECONDS:
            kept.pop(key)[0].close()
    key = _kept_key(integration)
    entry = kept.pop(key, None)
    adapter = entry[0] if entry else adapter_for(integration, pool_size=2)
    if entry:
        # its token refreshes go through this integration object, which the caller read just now
        adapter.credentials_store = partial(_tokens_refresh, integration=integration)
    from integrations.adapters.base import IntegrationError

    try:
        yield adapter
    except IntegrationError:
        # the OEM answered (a device offline, a 429, a refusal): the adapter itself is sound
        kept[_kept_key(integration)] = (adapter, time.monotonic())
        raise
    except BaseException:
        adapter.close()
        raise
    kept[_kept_key(integration)] = (adapter, time.monotonic())
    while len(kept) > ADAPTERS_PER_THREAD:
        kept.popitem(last=False)[1][0].close()


def _tokens_refresh(**kwargs):
    from integrations.services import integration_tokens_refresh

    return integration_tokens_refresh(**kwargs)


def adapters_reused_close() -> None:
    """Close this thread's kept adapters (tests; a worker shutting down)."""
    kept = _kept.__dict__.pop("adapters", {})
    for adapter, _ in kept.values():
        adapter.close()
