"""Dispatch: dispatch events (program events) with their actions, commands and their roundtrip through the
OEM adapters, and the device's command log in the API (`/v1/devices/{id}/commands`, served here so the fleet
knows nothing of commands). Announces its changes through the core's events (`dispatch/events.py`)."""
