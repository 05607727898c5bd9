"""The API docs work without internet: Swagger UI (/v1/docs) and ReDoc (/v1/redoc) load their scripts, styles
and icons from the portal's own static files (drf-spectacular-sidecar), never from a CDN or a font service."""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class Assets(HTMLParser):
    """Every src / href of the page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def page_assets(html: str) -> list[str]:
    parser = Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("name", "marker", "expected_assets"),
    [
        (
            "api-docs",
            "swagger-ui",
            {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"},
        ),
        ("api-redoc", "redoc", {"redoc.standalone.js"}),
    ],
)
def test_the_docs_pages_reference_only_the_portals_own_static_files(db, name, marker, expected_assets):
    client = Client()
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert marker in html.lower()
    # no address of another host anywhere in the page: not in a tag, not in the inline script
    assert URL.findall(html) == []
    assets = page_assets(html)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == expected_assets
    for asset in assets:
        assert urlsplit(asset).netloc == "" and asset.startswith("/static/drf_spectacular_sidecar/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        # the sidecar's file itself, byte for byte
        on_disk = finders.find(asset.removeprefix("/static/"))
        assert b"".join(served.streaming_content) == Path(on_disk).read_bytes(), asset


def test_the_schema_the_docs_read_is_the_portals_own(db):
    html = Client().get(reverse("api-docs")).content.decode()
    assert f'url: "{reverse("api-schema")}"' in html
    assert '"validatorUrl": null' in html  # no badge fetched from validator.swagger.io


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "operation"),
    [
        # Swagger UI: one block per operation, by its operationId
        ("/v1/docs", "#operations-devices-devices_list"),
        # ReDoc: one section per operation in its middle panel
        ("/v1/redoc", "[id='tag/devices/operation/devices_list']"),
    ],
)
def test_the_docs_render_the_operations_with_other_hosts_unreachable(live_server, page, path, operation):
    from tests.dispatch.test_report_browser import offline

    outside = offline(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector(operation, timeout=30000)
    assert page.locator(operation).count() >= 1
    text = page.locator("body").inner_text()
    assert "/v1/devices" in text and "/v1/commands/{deviceType}/{action}" in text
    assert outside == [] and errors == []
