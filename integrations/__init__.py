"""Integrations: one adapter per OEM cloud, each workspace's integrations and credentials, discovery,
telemetry sync, offline detection (its logic measures silence against each OEM's cadence, so its task is
here too), and the OEM simulator.

It builds on the fleet and programs and never the reverse: the catalog of makers is the fleet's
(`fleet.models.Manufacturer`, see `fleet/__init__.py`), platform events are the core's
(`texture_portal.events`), and the device list's "Discover now" action is added to the fleet's admin from
`integrations/admin.py`.
"""
