"""The fleet: the manufacturer catalog, contacts, sites, devices with their state history, telemetry, and
the fleet CSV import.

The manufacturer catalog lives here, not in `integrations`: a device's maker is the fleet's own vocabulary
(the CSV's `manufacturerSlug`, the scope of a serial, the device types a maker makes), and with the catalog
here the fleet imports nothing of `integrations` at all, while `integrations` builds on the fleet as it
already did (it finds, reads and commands the fleet's devices). Left in `integrations`, the catalog made the
two apps import each other (the device's foreign key, the import's slug lookup one way; device state and
telemetry the other). The one thing of integrations the catalog carries is `integration_channel`, the name of
the adapter that reaches a maker's devices, kept as plain text; a test holds every catalog channel to an
adapter. The fleet announces its changes through the core's events (`fleet/events.py`).
"""
