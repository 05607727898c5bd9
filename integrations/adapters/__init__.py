"""The common OEM adapter contract and the registry of adapters by integration channel."""

from integrations.adapters.base import (
    AuthError,
    CommandRejected,
    CommandResult,
    DeviceOffline,
    DeviceRef,
    DiscoveredDevice,
    IntegrationError,
    NotFound,
    NotSupported,
    OemAdapter,
    RateLimited,
    TelemetrySnapshot,
    TransientError,
)
from integrations.adapters.registry import adapter_class, adapter_for, adapter_reused, adapters_reused_close

__all__ = [
    "AuthError",
    "CommandRejected",
    "CommandResult",
    "DeviceOffline",
    "DeviceRef",
    "DiscoveredDevice",
    "IntegrationError",
    "NotFound",
    "NotSupported",
    "OemAdapter",
    "RateLimited",
    "TelemetrySnapshot",
    "TransientError",
    "adapter_class",
    "adapter_for",
    "adapter_reused",
    "adapters_reused_close",
]
