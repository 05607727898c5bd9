"""The manufacturer catalog the portal ships with (seeded by migration; kept here so tests and migrations
agree). EV brands are reached through Smartcar. The channel is the name of the integrations adapter that
reaches the maker's devices (`integrations.choices.IntegrationChannel`, checked by a test)."""

BATTERY, CHARGER, VEHICLE, INVERTER = "battery", "charger", "vehicle", "inverter"

MANUFACTURERS = [
    # slug, name, channel, device types, grid services, read-only, aliases
    ("tesla", "Tesla", "tesla", [BATTERY, CHARGER, INVERTER], True, False, []),
    ("franklinwh", "FranklinWH", "franklinwh", [BATTERY], True, False, ["franklin-wh", "franklin"]),
    ("enphase", "Enphase", "enphase", [BATTERY, INVERTER, CHARGER], True, False, []),
    ("solaredge", "SolarEdge", "solaredge", [INVERTER, BATTERY], False, True, ["solaredge-monitoring-api"]),
    ("emporia", "Emporia", "emporia", [CHARGER], False, False, []),
    ("chargepoint", "ChargePoint", "chargepoint", [CHARGER], True, False, []),
    ("smartcar", "Smartcar (any supported EV)", "smartcar", [VEHICLE], False, False, []),
    ("ford", "Ford", "smartcar", [VEHICLE], False, False, []),
    ("chevrolet", "Chevrolet", "smartcar", [VEHICLE], False, False, ["gm"]),
    ("rivian", "Rivian", "smartcar", [VEHICLE], False, False, []),
    ("hyundai", "Hyundai", "smartcar", [VEHICLE], False, False, []),
    ("kia", "Kia", "smartcar", [VEHICLE], False, False, []),
    ("volkswagen", "Volkswagen", "smartcar", [VEHICLE], False, False, ["vw"]),
    ("bmw", "BMW", "smartcar", [VEHICLE], False, False, []),
    ("nissan", "Nissan", "smartcar", [VEHICLE], False, False, []),
    ("tesla-vehicle", "Tesla (vehicles)", "smartcar", [VEHICLE], False, False, []),
]


def _manufacturer_model(apps):
    """The catalog's model: the fleet's, or integrations' in the states before it moved (its 0003 seeds it)."""
    try:
        return apps.get_model("fleet", "Manufacturer")
    except LookupError:
        return apps.get_model("integrations", "Manufacturer")


def seed_manufacturers(apps, schema_editor=None) -> None:
    """Insert or refresh the catalog rows (idempotent: re-running updates names and capabilities)."""
    Manufacturer = _manufacturer_model(apps)
    for slug, name, channel, device_types, grid, read_only, aliases in MANUFACTURERS:
        Manufacturer.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "integration_channel": channel,
                "device_types": device_types,
                "supports_grid_services": grid,
                "is_read_only": read_only,
                "aliases": aliases,
                "support_level": "production",
            },
        )
