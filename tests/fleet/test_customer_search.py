"""Customer support's search: every way a caller identifies themselves finds the customer (account number with
or without its prefix, name, e-mail, phone in any format normalized as on import, street address, a device's
serial), another workspace's customer never comes back, and it costs the same three queries at any fleet size.
Also the search box of every page (unfold's command search) and the plain results page."""

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fleet.customer import customer_search, search_phone
from fleet.importing.rows import phone_e164
from fleet.models import Contact, Device, Manufacturer, Site
from tests.factories import PASSWORD, UserFactory, staff_user
from tests.fleet.customer_scene import customer_scene
from texture_portal import home
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    return customer_scene()


@pytest.fixture(autouse=True)
def clean_cache():
    """unfold keeps command-search results for 5 minutes per user and term."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def found(scene, term, limit=20):
    return customer_search(term=term, workspace_ids=[scene.workspace.pk], limit=limit)


def first(scene, term):
    hits = found(scene, term)
    assert hits, f"nothing found for {term!r}"
    return hits[0]


@pytest.mark.parametrize("term", ["TRE-100214", "tre-100214", "  TRE-100214 "])
def test_the_account_number_finds_its_customer_first_as_an_exact_match(scene, term):
    hit = first(scene, term)
    assert hit.contact == scene.contact
    assert (hit.matches[0].kind, hit.matches[0].value, hit.matches[0].exact) == ("account", "TRE-100214", True)


def test_the_account_number_without_its_prefix_finds_the_customer(scene):
    hit = first(scene, "100214")
    assert hit.contact == scene.contact
    assert hit.matches[0].kind == "account"
    assert hit.describe() == "Account number TRE-100214"


def test_a_number_without_its_prefix_matches_after_the_prefix_only(scene):
    """100333 is TRE-100333's number; TRE-2100333 only ends with the same digits."""
    contacts = [h.contact for h in found(scene, "100333")]
    assert contacts == [scene.neighbour]


def test_the_start_of_an_account_number_lists_the_accounts_it_begins(scene):
    contacts = {h.contact for h in found(scene, "TRE-1002")}
    assert contacts == {scene.contact}
    assert {h.contact for h in found(scene, "tre-")} == {scene.contact, scene.neighbour, scene.decoy}


@pytest.mark.parametrize("term", ["Chen", "chen", "Carmen", "carm", "Carmen Chen", "carmen ch", "Chen, Carmen"])
def test_a_name_finds_the_customer(scene, term):
    hit = first(scene, term)
    assert hit.contact == scene.contact
    assert hit.matches[0].kind == "name"
    assert hit.matches[0].value == "Carmen Chen"


def test_a_full_name_is_an_exact_match_and_a_wrong_first_name_finds_nobody(scene):
    assert first(scene, "carmen chen").matches[0].exact
    assert found(scene, "Ava Chen") == []


@pytest.mark.parametrize("term", ["carmen.chen@example.com", "CARMEN.CHEN@EXAMPLE.COM", "carmen.ch"])
def test_the_email_finds_the_customer(scene, term):
    hit = first(scene, term)
    assert hit.contact == scene.contact
    assert "email" in {m.kind for m in hit.matches}


@pytest.mark.parametrize(
    "term", ["(541) 555-1188", "541-555-1188", "+1 541 555 1188", "5415551188", "1 541.555.1188", "+15415551188"]
)
def test_a_phone_in_any_format_finds_the_customer(scene, term):
    # normalized exactly as the fleet import normalizes the file's phones (what the contact has stored)
    assert search_phone(term) == phone_e164(term, "US") == "+15415551188"
    hit = first(scene, term)
    assert hit.contact == scene.contact
    assert (hit.matches[0].kind, hit.matches[0].value) == ("phone", "(541) 555-1188")


def test_part_of_a_phone_number_is_no_phone_match(scene):
    assert search_phone("555-1188") is None
    assert found(scene, "555-1188") == []


@pytest.mark.parametrize(
    "term", ["1422 Juniper Way", "1422 juniper", "1422 Juniper Way, Redmond", "1422 Juniper, 97756", "1422 juniper, or"]
)
def test_a_street_address_finds_the_customer(scene, term):
    hit = first(scene, term)
    assert hit.contact == scene.contact
    assert hit.matches[0].kind == "address"
    assert hit.matches[0].value == scene.home.address
    assert hit.matches[0].site_id == scene.home.pk


def test_an_address_in_another_city_is_not_the_customers(scene):
    assert found(scene, "1422 Juniper, Bend") == []


@pytest.mark.parametrize("term", ["EN0014160265", "en0014160265", "EN00141602"])
def test_a_device_serial_finds_its_owner_and_names_the_device(scene, term):
    hit = first(scene, term)
    assert hit.contact == scene.contact
    match = hit.matches[0]
    assert (match.kind, match.value, match.detail, match.device_id) == (
        "serial",
        "EN0014160265",
        "Enphase",
        scene.live.pk,
    )
    assert hit.device_id == scene.live.pk


def test_several_matches_of_one_customer_are_one_hit(scene):
    """The account number's digits are also in the e-mail? No: but a name and an e-mail both match 'carmen'."""
    hits = found(scene, "carmen")
    assert [h.contact for h in hits] == [scene.contact]
    assert {m.kind for m in hits[0].matches} == {"name", "email"}


def test_a_term_too_short_or_empty_finds_nothing(scene):
    assert found(scene, "") == []
    assert found(scene, "c") == []
    assert customer_search(term="TRE-100214", workspace_ids=[]) == []


def test_another_workspaces_customer_is_never_found(scene):
    """The stranger shares Carmen's account number, name, e-mail, phone, street and a serial."""
    for term in ["TRE-100214", "100214", "Carmen Chen", "carmen.chen@example.com", "(541) 555-1188", "1422 Juniper"]:
        contacts = {h.contact for h in found(scene, term)}
        assert scene.stranger not in contacts, term
        assert contacts == {scene.contact}, term
    assert {h.contact for h in found(scene, "EN0014160265")} == {scene.contact}
    # and from the other workspace, only the stranger
    other = customer_search(term="EN0014160265", workspace_ids=[scene.other_workspace.pk])
    assert [h.contact for h in other] == [scene.stranger]


def test_the_limit_caps_the_hits(scene):
    assert len(found(scene, "tre-", limit=2)) == 2


def bulk_fleet(workspace, n: int, start: int = 0):
    """n more customers, each with a site and a device, written in bulk (numbered from `start`)."""
    contacts = Contact.objects.bulk_create(
        [
            Contact(
                workspace=workspace,
                reference_id=f"TRE-{500000 + i}",
                first_name="Carmen" if i % 3 == 0 else "Dana",
                last_name=f"Chen{i}",
                email=f"c{i}@example.com",
                phone=f"+1541555{2000 + i:04d}",
            )
            for i in range(start, start + n)
        ]
    )
    sites = Site.objects.bulk_create(
        [
            Site(workspace=workspace, contact=c, street_one=f"{1400 + i} Juniper Way", city="Bend", postal_code="97701")
            for i, c in enumerate(contacts, start)
        ]
    )
    tesla = Manufacturer.objects.get(slug="tesla")
    Device.objects.bulk_create(
        [
            Device(
                workspace=workspace,
                contact_id=s.contact_id,
                site=s,
                manufacturer=tesla,
                system_identifier=f"EN00{i:08d}",
                device_type="battery",
            )
            for i, s in enumerate(sites, start)
        ]
    )


TERMS = ["TRE-100214", "100214", "Carmen Chen", "carmen", "(541) 555-1188", "1422 Juniper", "EN00141602"]


def queries_per_term(scene) -> dict[str, int]:
    counts = {}
    for term in TERMS:
        with CaptureQueriesContext(connection) as ctx:
            found(scene, term)
        counts[term] = len(ctx.captured_queries)
    return counts


def test_the_search_costs_the_same_few_queries_whatever_the_fleets_size(scene):
    bulk_fleet(scene.workspace, 5)
    small = queries_per_term(scene)
    bulk_fleet(scene.other_workspace, 5)
    bulk_fleet(scene.workspace, 300, start=5)
    large = queries_per_term(scene)
    assert small == large
    assert max(large.values()) <= 3
    assert len(found(scene, "carmen", limit=20)) == 20  # the larger fleet does match more


@pytest.mark.postgres
def test_postgresql_answers_every_lookup_from_an_index(scene):
    """With sequential scans priced out, the plans read the search indexes (fleet 0013): the expressions the
    search writes are the ones indexed. (On a table this small the planner would rightly scan it otherwise.)"""
    with CaptureQueriesContext(connection) as ctx:
        for term in TERMS:
            found(scene, term)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for query in ctx.captured_queries:
                cursor.execute("EXPLAIN " + query["sql"])
                plan = "\n".join(row[0] for row in cursor.fetchall())
                for table in ("fleet_contact", "fleet_site", "fleet_device"):
                    assert f"Seq Scan on {table}" not in plan, plan
        finally:
            cursor.execute("SET enable_seqscan = on")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE ANY (ARRAY['contact_%', 'site_%', 'device_%'])"
        )
        names = {row[0] for row in cursor.fetchall()}
    assert {"contact_reference_reversed_idx", "contact_phone_idx", "device_serial_upper_idx"} <= names


# -- the search box of every page (unfold's command search) ---------------------------------------------------


def command_search(user, term):
    request = RequestFactory().get("/admin/search/")
    request.user = user
    return home.search(request, term)


def test_the_search_box_finds_the_customer_and_links_to_the_customer_page(scene):
    support = staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    results = command_search(support, "tre-100214")  # unfold lower-cases the term
    assert [r.title for r in results] == ["Carmen Chen · TRE-100214"]
    assert results[0].link == reverse("admin:fleet_contact_customer", args=[scene.contact.pk])
    assert "Account number TRE-100214" in results[0].description
    serial = command_search(support, "en0014160265")
    assert serial[0].link.endswith(f"?device={scene.live.pk}#device-{scene.live.pk}")
    assert serial[0].icon == "battery_charging_full"


def test_the_search_box_finds_nothing_in_a_workspace_where_the_user_may_not_see_contacts(scene):
    outsider = staff_user("outsider", scene.other_workspace, Role.CUSTOMER_SUPPORT)
    titles = [r.title for r in command_search(outsider, "tre-100214")]
    assert titles == ["Carmen Chen · TRE-100214"]  # the stranger, in the outsider's own workspace
    link = command_search(outsider, "tre-100214")[0].link
    assert link == reverse("admin:fleet_contact_customer", args=[scene.stranger.pk])


def test_a_full_search_box_offers_the_results_page(scene):
    bulk_fleet(scene.workspace, 12)
    support = staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    results = command_search(support, "dana")
    assert len(results) == 9
    assert results[-1].link == reverse("admin:fleet_contact_search") + "?q=dana"


def test_the_command_search_view_is_cached_per_user_so_tenants_never_share_results(client, scene):
    """unfold caches results for 5 minutes under the user's id and the term: the same term typed by a user of
    another workspace gets that workspace's customer, not the cached one."""
    staff_user("support-a", scene.workspace, Role.CUSTOMER_SUPPORT)
    staff_user("support-b", scene.other_workspace, Role.CUSTOMER_SUPPORT)
    url = reverse("admin:search") + "?s=TRE-100214&extended=1"
    client.login(username="support-a", password=PASSWORD)
    page_a = client.get(url).content.decode()
    assert reverse("admin:fleet_contact_customer", args=[scene.contact.pk]) in page_a
    client.logout()
    client.login(username="support-b", password=PASSWORD)
    page_b = client.get(url).content.decode()
    assert reverse("admin:fleet_contact_customer", args=[scene.stranger.pk]) in page_b
    assert reverse("admin:fleet_contact_customer", args=[scene.contact.pk]) not in page_b


# -- the results page -----------------------------------------------------------------------------------------


def test_the_results_page_lists_every_match_with_what_matched(client, scene):
    staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support", password=PASSWORD)
    response = client.get(reverse("admin:fleet_contact_search"), {"q": "carmen"})
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r["hit"].contact for r in rows] == [scene.contact]
    assert rows[0]["phone"] == "(541) 555-1188"
    assert [(state, n) for state, _label, n in rows[0]["devices"]] == [
        ("on_workspace", 1),
        ("offline", 1),
        ("registered", 3),
    ]
    html = response.content.decode()
    assert "carmen.chen@example.com" in html and "What matched" in html
    assert reverse("admin:fleet_contact_customer", args=[scene.contact.pk]) in html


def test_the_results_page_never_shows_another_workspaces_customer(client, scene):
    staff_user("support-b", scene.other_workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support-b", password=PASSWORD)
    response = client.get(reverse("admin:fleet_contact_search"), {"q": "100214"})
    assert [r["hit"].contact for r in response.context["rows"]] == [scene.stranger]


def test_the_results_page_says_when_nothing_matches_and_refuses_a_term_too_long(client, scene):
    staff_user("support", scene.workspace, Role.CUSTOMER_SUPPORT)
    client.login(username="support", password=PASSWORD)
    nothing = client.get(reverse("admin:fleet_contact_search"), {"q": "zzz-nobody"})
    assert "No customer matches" in nothing.content.decode()
    long = client.get(reverse("admin:fleet_contact_search"), {"q": "x" * 201})
    assert long.status_code == 200
    assert "longer than 200 characters" in long.content.decode()
    assert long.context["rows"] == []


def test_the_results_page_needs_the_right_to_view_contacts(client, scene):
    UserFactory(username="nobody", is_staff=True)
    client.login(username="nobody", password=PASSWORD)
    assert client.get(reverse("admin:fleet_contact_search"), {"q": "carmen"}).status_code == 403
