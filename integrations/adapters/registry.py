"""Adapter classes by integration channel, and building one for a workspace integration."""

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
