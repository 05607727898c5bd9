"""Customer support's view of the fleet: finding a customer from whatever the caller gives (account number,
name, e-mail, phone, address, a device's serial), and the customer page that answers the usual call (where
are my devices, why is this one not working).

Other apps add to the page without the fleet knowing them (fleet imports neither dispatch nor integrations):
- `customer_section_register(CustomerSection(...))`: a part of the page another app renders (dispatch: the
  devices' recent events, participation and opt-outs), from a template and a context function;
- `integration_facts_provider_register(fn)`: what the workspace's OEM integrations say (enabled, working, when
  discovery last looked serials up), so a Registered System's explanation can say why it is not live yet.
Both are filled in the other apps' `AppConfig.ready()`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.db.models.functions import Reverse, Upper
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from fleet.choices import DeviceState, GridServicesStatus
from fleet.geocoding import postal_code_centroid
from fleet.models import Contact, Device, DeviceStateChange, Site
from texture_portal.timezones import zone_or_utc

# -- extension points ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerSection:
    """A part of the customer page rendered by another app: `template` with what `context(request, page)`
    returns (None: the section is left out). `permission` is checked in the contact's own workspace. Its
    context must cost a constant, small number of queries whatever the customer's number of devices."""

    key: str
    title: Any
    template: str
    context: Callable[[HttpRequest, CustomerPage], dict | None]
    order: int = 100
    permission: str | None = None


@dataclass(frozen=True)
class IntegrationFacts:
    """What a workspace's integration with one OEM channel says, for explaining a device's state."""

    label: str  # "Tesla Fleet API"
    enabled: bool
    working: bool | None = None  # its last connection: True ok, False failed, None not tried yet
    last_error: str = ""
    last_discovery_at: datetime | None = None  # the last discovery run that looked serials up and finished
    can_discover: bool = True  # the portal has an adapter for this channel


# (workspace_ids=[...], channels=[...]) -> {(workspace_id, channel): IntegrationFacts}; a (workspace, channel)
# left out of the answer has no integration at all.
IntegrationFactsProvider = Callable[..., dict[tuple[int, str], IntegrationFacts]]

_sections: list[CustomerSection] = []
_facts_providers: list[IntegrationFactsProvider] = []


def customer_section_register(section: CustomerSection) -> None:
    if any(s.key == section.key for s in _sections):
        return  # ready() may run twice (tests); the first registration stands
    _sections.append(section)


def customer_sections() -> list[CustomerSection]:
    return sorted(_sections, key=lambda s: (s.order, s.key))


def integration_facts_provider_register(provider: IntegrationFactsProvider) -> None:
    if provider not in _facts_providers:
        _facts_providers.append(provider)


def integration_facts(*, workspace_ids: list[int], channels: list[str]) -> dict[tuple[int, str], IntegrationFacts]:
    """What the registered providers say ({} when none is: the explanations then rest on the device's own
    recorded reason and OEM data)."""
    found: dict[tuple[int, str], IntegrationFacts] = {}
    if not workspace_ids or not channels:
        return found
    for provider in _facts_providers:
        found.update(provider(workspace_ids=sorted(set(workspace_ids)), channels=sorted(set(channels))))
    return found


def integration_facts_known() -> bool:
    return bool(_facts_providers)


# -- search -------------------------------------------------------------------------------------------------
#
# A customer is looked up by what a caller says, in three queries whatever the fleet's size: the contacts
# (account number, name, e-mail, phone), the sites (address) and the devices (serial), each an OR of prefix or
# equality conditions that PostgreSQL answers from indexes (fleet migration 0013): prefix LIKE on upper(...)
# text_pattern_ops expression indexes led by workspace_id, equality on the E.164 phone, and the account
# number's reversed text for "without its prefix" (a suffix is a prefix of the reversed string). No `%term%`
# scan: trigram indexes would need pg_trgm, which the deployments do not install.

MATCH_LABELS = {
    "account": "Account number",
    "name": "Name",
    "email": "E-mail",
    "phone": "Phone",
    "address": "Address",
    "serial": "Device serial",
}
SEARCH_MIN_LENGTH = 2
SUFFIX_MIN_LENGTH = 3  # "…333" of an account number: shorter suffixes match too much to help


@dataclass(frozen=True)
class CustomerMatch:
    kind: str  # a key of MATCH_LABELS
    value: str  # what matched, as stored
    exact: bool = False
    device_id: int | None = None
    site_id: int | None = None
    detail: str = ""  # e.g. the device's manufacturer

    @property
    def label(self) -> str:
        return MATCH_LABELS[self.kind]


@dataclass
class CustomerHit:
    contact: Contact
    matches: list[CustomerMatch] = field(default_factory=list)
    rank: int = 99

    @property
    def device_id(self) -> int | None:
        """The device a serial hit is about (the customer page highlights it)."""
        return next((m.device_id for m in self.matches if m.device_id is not None), None)

    def describe(self) -> str:
        """'Account number TRE-100214 · Device serial EN0014160265 (Enphase)'."""
        parts = []
        for match in self.matches:
            text = f"{match.label} {match.value}"
            parts.append(f"{text} ({match.detail})" if match.detail else text)
        return " · ".join(parts)


# lower ranks first
_RANK = {
    ("account", True): 0,
    ("serial", True): 1,
    ("phone", True): 2,
    ("email", True): 3,
    ("name", True): 4,
    ("account", False): 5,
    ("serial", False): 6,
    ("name", False): 7,
    ("email", False): 8,
    ("address", True): 9,
    ("address", False): 10,
}


def search_phone(term: str) -> str | None:
    """The term as the fleet import stores phone numbers (E.164, read as dialled from the US), or None."""
    from fleet.importing.rows import phone_e164

    if sum(ch.isdigit() for ch in term) < 7:
        return None
    return phone_e164(term, "US")


def phone_display(e164: str) -> str:
    """+15415551188 → (541) 555-1188; other countries in international format; anything else as stored."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    style = phonenumbers.PhoneNumberFormat.NATIONAL if number.country_code == 1 else None
    return phonenumbers.format_number(number, style or phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _suffix_at_boundary(value: str, term: str) -> bool:
    """Whether `term` ends `value` after a separator or a change of kind (TRE-100333, TRE100333 ← 100333)."""
    value, term = value.upper(), term.upper()
    if not value.endswith(term) or len(value) == len(term):
        return value == term
    before, first = value[-len(term) - 1], term[0]
    if not before.isalnum():
        return True
    return before.isdigit() != first.isdigit()


def customer_search(*, term: str, workspace_ids: list[int], limit: int = 20) -> list[CustomerHit]:
    """Customers of these workspaces matching `term`, best first, with what matched; three queries.

    Matches: the account number (`referenceId`) from its start, or its end after its prefix (`100333` finds
    `TRE-100333`); first or last name from their start, or both (`Carmen Chen`, `Chen, Carmen`); the e-mail
    from its start; the phone in any format, normalized as the fleet import normalizes it (E.164) and
    compared whole; a site's street from its house number (`1422 Juniper`, narrowed by `, Redmond` or
    `, 97756` after a comma) or its site reference; a device's
    serial (`systemIdentifier`) from its start. Case never matters.

    Three queries whatever the fleet's size, each answered from indexes on PostgreSQL (fleet migration 0013)."""
    term = " ".join((term or "").split())
    if len(term) < SEARCH_MIN_LENGTH or not workspace_ids:
        return []
    workspace_ids = sorted(set(workspace_ids))
    upper = term.upper()
    hits: dict[int, CustomerHit] = {}

    def add(contact: Contact, match: CustomerMatch) -> None:
        hit = hits.setdefault(contact.pk, CustomerHit(contact=contact))
        if match not in hit.matches:
            hit.matches.append(match)
        hit.rank = min(hit.rank, _RANK[(match.kind, match.exact)])

    # 1. contacts: account number, name, e-mail, phone
    phone = search_phone(term)
    words = [w for w in re.split(r"[\s,]+", term) if w]
    conditions = Q(reference_id__istartswith=term)
    suffix = len(term) >= SUFFIX_MIN_LENGTH and " " not in term
    if suffix:
        conditions |= Q(reference_reversed__startswith=upper[::-1])
    if " " not in term:
        conditions |= Q(email__istartswith=term)
    if phone:
        conditions |= Q(phone=phone)
    if len(words) == 1:
        conditions |= Q(last_name__istartswith=words[0]) | Q(first_name__istartswith=words[0])
    else:
        conditions |= (
            Q(first_name__istartswith=words[0], last_name__istartswith=words[-1])
            | Q(last_name__istartswith=words[0], first_name__istartswith=words[1])
            | Q(last_name__istartswith=term)
        )
    contacts = (
        Contact.objects.filter(workspace_id__in=workspace_ids)
        .annotate(reference_reversed=Reverse(Upper("reference_id")))
        .filter(conditions)
        .annotate(
            best=Case(
                When(reference_id__iexact=term, then=Value(0)),
                *([When(phone=phone, then=Value(2))] if phone else []),
                When(email__iexact=term, then=Value(3)),
                When(reference_id__istartswith=term, then=Value(4)),
                default=Value(7),
                output_field=IntegerField(),
            )
        )
        .order_by("best", "last_name", "first_name", "pk")[: limit * 2 if suffix else limit]
    )
    for contact in contacts:
        reference = contact.reference_id.upper()
        if reference == upper:
            add(contact, CustomerMatch("account", contact.reference_id, exact=True))
        elif reference.startswith(upper):
            add(contact, CustomerMatch("account", contact.reference_id))
        elif suffix and _suffix_at_boundary(reference, upper):
            add(contact, CustomerMatch("account", contact.reference_id, exact=True))
        if phone and contact.phone == phone:
            add(contact, CustomerMatch("phone", phone_display(contact.phone), exact=True))
        if contact.email and contact.email.upper().startswith(upper):
            add(contact, CustomerMatch("email", contact.email, exact=contact.email.upper() == upper))
        name = _name_match(contact, words, term)
        if name is not None:
            add(contact, name)

    # 2. sites: the street from its house number ("1422 Juniper Way"), narrowed by what follows a comma (a city,
    # state or postal code: "1422 Juniper, Redmond"), or the site reference. A city or a postal code alone is an
    # area, not a customer (thousands of sites; the Sites list filters by them).
    parts = [p.strip() for p in term.split(",")]
    street, refinements = parts[0], [p for p in parts[1:] if p]
    site_conditions = Q(site_reference_id__iexact=term)
    if len(street) >= 3:
        along = Q(street_one__istartswith=street)
        for part in refinements:
            along &= Q(city__istartswith=part) | Q(postal_code__startswith=part) | Q(state__iexact=part)
        site_conditions |= along
    sites = (
        Site.objects.filter(workspace_id__in=workspace_ids)
        .filter(site_conditions)
        .select_related("contact")
        .annotate(
            best=Case(
                When(site_reference_id__iexact=term, then=Value(0)),
                When(street_one__iexact=street, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("best", "contact__last_name", "contact__first_name", "pk")[:limit]
    )
    for site in sites:
        exact = site.site_reference_id.upper() == upper or site.street_one.upper() == street.upper()
        add(site.contact, CustomerMatch("address", site.address, exact=exact, site_id=site.pk))

    # 3. devices: serial from its start
    if " " not in term:
        devices = (
            Device.objects.filter(workspace_id__in=workspace_ids, system_identifier__istartswith=term)
            .select_related("contact", "manufacturer")
            .annotate(
                best=Case(
                    When(system_identifier__iexact=term, then=Value(0)), default=Value(1), output_field=IntegerField()
                )
            )
            .order_by("best", "system_identifier", "pk")[:limit]
        )
        for device in devices:
            add(
                device.contact,
                CustomerMatch(
                    "serial",
                    device.system_identifier,
                    exact=device.system_identifier.upper() == upper,
                    device_id=device.pk,
                    detail=device.manufacturer.name,
                ),
            )

    ordered = sorted(
        hits.values(), key=lambda h: (h.rank, h.contact.last_name.lower(), h.contact.first_name.lower(), h.contact.pk)
    )
    for hit in ordered:
        hit.matches.sort(key=lambda m: _RANK[(m.kind, m.exact)])
    return ordered[:limit]


def _name_match(contact: Contact, words: list[str], term: str) -> CustomerMatch | None:
    first, last = contact.first_name.upper(), contact.last_name.upper()
    full = f"{contact.first_name} {contact.last_name}"
    upper = [w.upper() for w in words]
    if len(upper) == 1:
        if last.startswith(upper[0]) or first.startswith(upper[0]):
            return CustomerMatch("name", full, exact=upper[0] in (first, last))
        return None
    if (
        (first.startswith(upper[0]) and last.startswith(upper[-1]))
        or (last.startswith(upper[0]) and first.startswith(upper[1]))
        or last.startswith(term.upper())
    ):
        exact = (first == upper[0] and last == upper[-1]) or (last == upper[0] and first == upper[1])
        return CustomerMatch("name", full, exact=exact)
    return None


# -- the customer page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A time as support reads it: local to the customer's site (labelled), UTC on hover, how long ago."""

    at: datetime
    local: str
    utc: str
    ago: str

    @property
    def iso(self) -> str:
        return self.at.isoformat()


def moment(at: datetime | None, zone, now: datetime) -> Moment | None:
    if at is None:
        return None
    local = at.astimezone(zone)
    ago = timesince(at, now, depth=2) if at <= now else "0\xa0minutes"
    return Moment(at=at, local=f"{local:%Y-%m-%d %H:%M} {local.tzname()}", utc=f"{at:%Y-%m-%d %H:%M} UTC", ago=ago)


@dataclass
class DeviceStory:
    """One device in plain words: its state, why, and what the last reading said."""

    device: Device
    state_label: str
    tone: str  # "live" | "offline" | "registered"
    headline: str
    explanations: list[str]
    facts: list[tuple[str, str]]
    since: Moment | None = None
    last_reading: Moment | None = None
    last_lookup: Moment | None = None
    enrollments: list = field(default_factory=list)
    highlighted: bool = False


@dataclass
class CustomerPage:
    contact: Contact
    sites: list[Site]
    devices: list[Device]
    stories: list[DeviceStory]
    state_changes: list[DeviceStateChange]
    map_features: dict
    zone: Any
    now: datetime
    counts: dict[str, int]

    @property
    def device_ids(self) -> list[int]:
        return [d.pk for d in self.devices]


def _reading_facts(reading) -> list[tuple[str, str]]:
    if reading is None:
        return []
    facts = []
    if reading.charge_percentage is not None:
        facts.append(("State of charge", f"{reading.charge_percentage:.0f} %"))
    if reading.charge_rate_w is not None:
        watts = reading.charge_rate_w
        verb = "discharging" if watts > 0 else "charging" if watts < 0 else "idle"
        facts.append(("Battery power", f"{abs(watts) / 1000:.1f} kW {verb}" if watts else "idle"))
    if reading.charger_wattage_w is not None:
        facts.append(("Charger power", f"{reading.charger_wattage_w / 1000:.1f} kW"))
    if reading.is_plugged_in is not None:
        facts.append(("Plugged in", "yes" if reading.is_plugged_in else "no"))
    if reading.grid_power_w is not None:
        watts = reading.grid_power_w
        facts.append(("Grid", f"{abs(watts) / 1000:.1f} kW {'importing' if watts >= 0 else 'exporting'}"))
    if reading.backup_reserve_percent is not None:
        facts.append(("Backup reserve", f"{reading.backup_reserve_percent:.0f} %"))
    if reading.is_storm_mode_active:
        facts.append(("Storm Guard", "active"))
    return facts


def _registered_story(device, facts: IntegrationFacts | None, known: bool, zone, now) -> DeviceStory:
    oem = device.manufacturer.name
    registered_at = max(device.created, device.state_changed_at)
    miss = (device.oem_data or {}).get("discoveryMiss") or {}
    miss_at = None
    if miss.get("serial") == device.system_identifier and miss.get("at"):
        try:
            miss_at = datetime.fromisoformat(miss["at"])
        except ValueError:
            miss_at = None
    explanations: list[str] = []
    last_lookup = None
    if known and facts is None:
        headline = f"Not live yet: the {oem} integration is not set up for this workspace"
        explanations.append(
            f"This workspace has no {oem} integration, so the portal has never looked serial "
            f"{device.system_identifier} up at {oem}. Engineering connects it under Integrations; the device then "
            "comes live by itself once discovery finds it."
        )
    elif facts is not None and not facts.enabled:
        headline = f"Not live yet: the {facts.label} integration is not enabled"
        explanations.append(
            f"The {facts.label} integration is not enabled for this workspace, so the portal does not look serials "
            f"up at {oem}. Engineering enables it under Integrations; the device then comes live by itself once "
            "discovery finds it."
        )
    elif facts is not None and not facts.can_discover:
        headline = f"Not live yet: the portal cannot reach {oem} devices yet"
        explanations.append(f"The portal has no {facts.label} adapter yet, so this device cannot be discovered.")
    elif facts is not None and facts.working is False:
        headline = f"Not live yet: the {facts.label} connection is failing"
        explanations.append(
            f"The {facts.label} integration is enabled but its last connection failed"
            + (f" (“{facts.last_error[:200]}”)" if facts.last_error else "")
            + ": discovery cannot look the serial up until Engineering fixes the credentials."
        )
    elif miss_at is not None:
        last_lookup = moment(miss_at, zone, now)
        misses = miss.get("misses", 1)
        headline = f"Not live yet: serial not found at {oem}"
        explanations.append(
            f"{oem} did not know serial {device.system_identifier} for this utility's account: looked up "
            f"{misses} time{'s' if misses != 1 else ''} in a row, last {last_lookup.local} ({last_lookup.ago} ago). "
            "Check the serial with the customer (it is on the device's label or in the OEM's app) and that the "
            f"device is registered to the utility's {oem} account."
        )
    elif facts is not None and facts.last_discovery_at is not None and facts.last_discovery_at >= registered_at:
        last_lookup = moment(facts.last_discovery_at, zone, now)
        headline = f"Not live yet: serial not found at {oem}"
        explanations.append(
            f"Discovery last looked this workspace's serials up at {oem} {last_lookup.local} "
            f"({last_lookup.ago} ago) and {device.system_identifier} was not among them. Check the serial with "
            f"the customer and that the device is registered to the utility's {oem} account."
        )
    elif facts is not None:
        headline = f"Not live yet: waiting for its first look-up at {oem}"
        explanations.append(
            f"Discovery has not looked serial {device.system_identifier} up at {oem} since it was registered; its "
            "next run will"
            + (
                f" (the last one ran {moment(facts.last_discovery_at, zone, now).local})."
                if facts.last_discovery_at
                else "."
            )
        )
        if facts.last_discovery_at:
            last_lookup = moment(facts.last_discovery_at, zone, now)
    else:
        headline = "Not live yet: not bound to an OEM account"
    # the registration's own reason ("Registered", "Imported…") says nothing the headline does not
    recorded = device.state_reason
    if recorded and not recorded.startswith(("Registered", "Imported")) and recorded not in " ".join(explanations):
        explanations.append(f"Recorded reason: {recorded}")
    facts_rows = [("Registered", moment(registered_at, zone, now).local)]
    if last_lookup:
        facts_rows.append(("Last looked up", f"{last_lookup.local} ({last_lookup.ago} ago)"))
    else:
        facts_rows.append(("Last looked up", "never"))
    return DeviceStory(
        device=device,
        state_label=str(DeviceState.REGISTERED.label),
        tone="registered",
        headline=headline,
        explanations=explanations,
        facts=facts_rows,
        since=moment(device.state_changed_at, zone, now),
        last_lookup=last_lookup,
    )


def _offline_story(device, facts, site_devices, outage_count: int, zone, now) -> DeviceStory:
    oem = device.manufacturer.name
    since = moment(device.state_changed_at, zone, now)
    reading = device.latest_telemetry
    last_reading = moment(reading.measured_at if reading else device.last_seen_at, zone, now)
    causes: list[str] = []
    if facts is not None and not facts.enabled:
        causes.append(
            f"The {facts.label} integration is turned off for this workspace, so the portal no longer reads any "
            f"{oem} device. Engineering can enable it again under Integrations."
        )
    elif facts is not None and facts.working is False:
        causes.append(
            f"The {facts.label} connection is failing"
            + (f" (“{facts.last_error[:200]}”)" if facts.last_error else "")
            + f": no {oem} device of this workspace can report until Engineering fixes it. Not a problem at the home."
        )
    oem_error = ((device.oem_data or {}).get("lastSyncError") or {}).get("message")
    if outage_count:
        causes.append(
            f"{outage_count} other {oem} device{'s' if outage_count != 1 else ''} in this workspace went offline "
            f"within an hour of it: most likely a problem at {oem} or with the integration, not at the home."
        )
    others = [d for d in site_devices if d.pk != device.pk]
    if others and all(d.state == DeviceState.OFFLINE for d in others):
        causes.append(
            "Every device at this site stopped reporting: most likely the home lost power or its internet "
            "connection. Ask the customer whether the internet router and the device have power."
        )
    elif any(d.state == DeviceState.ON_WORKSPACE for d in others):
        causes.append(
            "The other devices at this site still report, so the home's internet works: most likely this device "
            f"lost its own connection (its Wi-Fi, gateway or {oem} account link) or was switched off."
        )
    elif not outage_count and not causes:
        causes.append(
            f"It stopped sending readings to {oem}: most likely the device lost its internet connection (Wi-Fi or "
            "the home's router) or its power. Ask the customer to check the device's connection in the "
            f"{oem} app."
        )
    if reading is not None and reading.is_storm_mode_active:
        causes.append(f"Storm Guard was active at its last reading: {oem} may hold the battery during a storm.")
    if oem_error:
        causes.append(f"{oem}'s last answer about it: “{oem_error[:200]}”.")
    if device.state_reason:
        causes.append(f"Recorded reason: {device.state_reason}")
    headline = f"Offline for {since.ago}, since {since.local}"
    facts_rows = [("Offline since", f"{since.local} ({since.ago} ago)")]
    if last_reading:
        facts_rows.append(("Last reading", f"{last_reading.local} ({last_reading.ago} ago)"))
    else:
        facts_rows.append(("Last reading", "none ever received"))
    facts_rows += _reading_facts(reading)
    return DeviceStory(
        device=device,
        state_label=str(DeviceState.OFFLINE.label),
        tone="offline",
        headline=headline,
        explanations=causes,
        facts=facts_rows,
        since=since,
        last_reading=last_reading,
    )


def _live_story(device, zone, now) -> DeviceStory:
    oem = device.manufacturer.name
    reading = device.latest_telemetry
    last_reading = moment(reading.measured_at if reading else device.last_seen_at, zone, now)
    explanations = []
    if last_reading is None:
        headline = f"Live at {oem}: no reading received yet"
        explanations.append(f"Discovery found it at {oem}; its first reading comes with the next telemetry sync.")
    else:
        charged = reading.charge_percentage if reading else None
        soc = f", {charged:.0f} % charged" if charged is not None else ""
        headline = f"Live: last reading {last_reading.ago} ago{soc}"
    if device.grid_services_status in (GridServicesStatus.NOT_ENROLLED, GridServicesStatus.PENDING):
        explanations.append(
            f"Grid services at {oem}: {device.get_grid_services_status_display().lower()} "
            "(the device cannot take part in events through the OEM's grid-services channel until enrolled)."
        )
    facts_rows = [("Live since", f"{moment(device.state_changed_at, zone, now).local}")]
    facts_rows.append(
        ("Last reading", f"{last_reading.local} ({last_reading.ago} ago)" if last_reading else "none yet")
    )
    facts_rows += _reading_facts(reading)
    if device.grid_services_status != GridServicesStatus.UNKNOWN:
        facts_rows.append(("Grid services", device.get_grid_services_status_display()))
    return DeviceStory(
        device=device,
        state_label=str(DeviceState.ON_WORKSPACE.label),
        tone="live",
        headline=headline,
        explanations=explanations,
        facts=facts_rows,
        since=moment(device.state_changed_at, zone, now),
        last_reading=last_reading,
    )


OUTAGE_WINDOW = timedelta(hours=1)


def _outage_counts(contact: Contact, devices: list[Device]) -> dict[int, int]:
    """{device id: other customers' devices of its OEM in the workspace that went offline within an hour of it}
    for the contact's offline devices (one query, on the (workspace, state, manufacturer) index)."""
    offline = [d for d in devices if d.state == DeviceState.OFFLINE]
    if not offline:
        return {}
    windows: dict[int, tuple[datetime, datetime]] = {}
    for device in offline:
        low, high = windows.get(device.manufacturer_id, (device.state_changed_at, device.state_changed_at))
        windows[device.manufacturer_id] = (min(low, device.state_changed_at), max(high, device.state_changed_at))
    arms = Q()
    for manufacturer_id, (low, high) in windows.items():
        arms |= Q(manufacturer_id=manufacturer_id, state_changed_at__range=(low - OUTAGE_WINDOW, high + OUTAGE_WINDOW))
    rows = (
        Device.objects.filter(workspace_id=contact.workspace_id, state=DeviceState.OFFLINE)
        .exclude(contact_id=contact.pk)
        .filter(arms)
        .values_list("manufacturer_id", "state_changed_at")
    )
    # per device: only those within its own hour (the query's window is the union of its OEM's devices')
    changed = defaultdict(list)
    for manufacturer_id, at in rows[:5000]:
        changed[manufacturer_id].append(at)
    return {
        d.pk: sum(abs(at - d.state_changed_at) <= OUTAGE_WINDOW for at in changed[d.manufacturer_id]) for d in offline
    }


def customer_page(*, contact: Contact, highlight_device_id: int | None = None, now=None) -> CustomerPage:
    """Everything the customer page shows of the fleet, in a constant number of queries whatever the number
    of sites, devices or readings: sites, devices (manufacturer and latest reading joined), enrollments, recent
    state changes, the integrations' facts (the providers' queries), and the OEM-outage count."""
    from programs.models import Enrollment

    now = now or timezone.now()
    sites = list(Site.objects.filter(workspace_id=contact.workspace_id, contact=contact).order_by("pk"))
    devices = list(
        Device.objects.filter(workspace_id=contact.workspace_id, contact=contact)
        .select_related("manufacturer", "latest_telemetry")
        .order_by("site_id", "pk")
    )
    site_by_id = {s.pk: s for s in sites}
    for device in devices:
        device.site = site_by_id.get(device.site_id) or device.site
    zone = zone_or_utc(next((s.timezone for s in sites if s.timezone), None))
    if not any(s.timezone for s in sites):
        centroid = next((postal_code_centroid(s.postal_code, s.country) for s in sites), None)
        if centroid and centroid.timezone:
            zone = zone_or_utc(centroid.timezone)

    enrollments = defaultdict(list)
    if devices:
        for enrollment in (
            Enrollment.objects.filter(workspace_id=contact.workspace_id, device__contact=contact)
            .select_related("program")
            .order_by("program__name", "pk")
        ):
            enrollments[enrollment.device_id].append(enrollment)
    changes = list(
        DeviceStateChange.objects.filter(workspace_id=contact.workspace_id, device__contact=contact)
        .select_related("device")
        .order_by("-changed_at", "-id")[:15]
    )
    channels = sorted({d.manufacturer.integration_channel for d in devices if d.state != DeviceState.ON_WORKSPACE})
    facts = integration_facts(workspace_ids=[contact.workspace_id], channels=channels) if channels else {}
    known = integration_facts_known()
    outages = _outage_counts(contact, devices)

    by_site = defaultdict(list)
    for device in devices:
        by_site[device.site_id].append(device)
    stories = []
    for device in devices:
        channel_facts = facts.get((contact.workspace_id, device.manufacturer.integration_channel))
        if device.state == DeviceState.REGISTERED:
            story = _registered_story(device, channel_facts, known, zone, now)
        elif device.state == DeviceState.OFFLINE:
            story = _offline_story(device, channel_facts, by_site[device.site_id], outages.get(device.pk, 0), zone, now)
        else:
            story = _live_story(device, zone, now)
        story.enrollments = enrollments.get(device.pk, [])
        story.highlighted = device.pk == highlight_device_id
        stories.append(story)

    counts = {state: sum(d.state == state for d in devices) for state in DeviceState.values}
    return CustomerPage(
        contact=contact,
        sites=sites,
        devices=devices,
        stories=stories,
        state_changes=changes,
        map_features=sites_geojson(sites, by_site),
        zone=zone,
        now=now,
        counts=counts,
    )


def sites_geojson(sites: list[Site], devices_by_site: dict[int, list[Device]]) -> dict:
    """The customer's sites as GeoJSON points for the map: the site's own coordinates, or (marked approximate)
    its US postal code's centroid from the package the importer uses; sites with neither are left off."""
    features = []
    for site in sites:
        approximate = False
        if site.latitude is not None and site.longitude is not None:
            lat, lon = site.latitude, site.longitude
        else:
            centroid = postal_code_centroid(site.postal_code, site.country)
            if centroid is None:
                continue
            lat, lon, approximate = centroid.latitude, centroid.longitude, True
        features.append(
            {
                "type": "Feature",
                "id": site.pk,
                "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                "properties": {
                    "siteId": site.pk,
                    "name": str(site),
                    "address": site.address,
                    "approximate": approximate,
                    "devices": [
                        {
                            "id": d.pk,
                            "serial": d.system_identifier,
                            "state": d.state,
                            "stateLabel": d.get_state_display(),
                        }
                        for d in devices_by_site.get(site.pk, [])
                    ],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def customers_recently_offline(*, workspace_ids: list[int], limit: int = 8) -> list[Device]:
    """The devices that went offline last, with their customers (the calls support is about to get)."""
    return list(
        Device.objects.filter(workspace_id__in=workspace_ids, state=DeviceState.OFFLINE)
        .select_related("contact", "manufacturer")
        .order_by("-state_changed_at", "-pk")[:limit]
    )


def contacts_by_ids(*, ids: list[int], workspace_ids: list[int]) -> list[Contact]:
    """These contacts, in the order given, those outside the workspaces left out (one query)."""
    found = {c.pk: c for c in Contact.objects.filter(pk__in=ids, workspace_id__in=workspace_ids)}
    return [found[pk] for pk in ids if pk in found]


def device_counts_by_contact(*, contact_ids: list[int]) -> dict[int, dict[str, int]]:
    """{contact id: {state: devices}} (one grouped query)."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = Device.objects.filter(contact_id__in=contact_ids).values_list("contact_id", "state").annotate(n=Count("pk"))
    for contact_id, state, n in rows.order_by():
        counts[contact_id][state] = n
    return counts
