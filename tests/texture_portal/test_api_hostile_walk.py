"""Every `/v1` operation of the served OpenAPI schema, called with hostile input (issue #15): NUL bytes, 100k-char
strings, 30-digit ids, wrong types, deep JSON, tampered cursors, inverted ranges, odd path ids. Fails on any 5xx,
on a traceback in a body, and on an error that is not in the API's error shape. On SQLite, and on PostgreSQL
(`DATABASE_URL=postgres://… pytest -m postgres`), whose text types refuse NUL and whose integers overflow.

The walk starts from the schema, so an operation added later is walked without touching this file; the valid
bodies below only let hostile values reach past "required" checks (an operation without one starts from `{}`)."""

import base64
import json
from datetime import timedelta
from unittest import mock
from urllib.parse import quote

import pytest
import requests
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from dispatch.models import BatchCommand
from fleet.importing.services import import_job_create
from fleet.models import Alert, ImportJob
from tests.api_scene import build_scene
from tests.api_support import api_client_for, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory
from tests.texture_portal.test_api_schema_fuzz import generated_schema

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

LONG = "x" * 100_000
NUL = "a\x00b"
HUGE_ID = "9" * 30
# query values: each parameter of each operation gets each of these (the limits middleware answers some; the
# 8,000-character one and the rest reach the filters)
QUERY_VALUES = [
    NUL,
    LONG,
    "y" * 8000,
    HUGE_ID,
    "-1",
    "1.5",
    "abc",
    "[]",
    "",
    "2026-13-45T99:99:99Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "１２３",  # fullwidth digits: int() takes them, the database would not
    "' OR 1=1 --",
]
PATH_VALUES = [HUGE_ID, "0", "-1", "1.5", "abc", "%00", quote(NUL), "x" * 5000, "%27%20OR%201%3D1--", "%F0%9F%92%A5"]
BODY_VALUES = [NUL, LONG, int(HUGE_ID), -(2**70), 1.5e308, -1, "", None, True, [], {}, [NUL], {"a": NUL}, "abc"]
RANGES = [("createdAfter", "createdBefore"), ("since", "until"), ("startsAfter", "startsBefore")]
RANGES += [("filterRangeAfter", "filterRangeBefore"), ("startsAt", "endsAt"), ("validFrom", "validUntil")]


def cursor(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


BAD_CURSORS = [cursor(b"p=abc"), cursor(b"p=1\x00"), cursor(b"p=1' OR 1=1--"), cursor(b"r=1&p=x&o=99999999999")]
BAD_CURSORS += [cursor(b"p=" + HUGE_ID.encode()), cursor(b"p=2026-01-01 00:00:00"), "!!!", cursor(b"o=-5")]


def _no_network(url, body, headers):  # deliveries never leave the process (delivery has its own tests)
    response = requests.Response()
    response.status_code, response._content = 204, b""
    return response


def _public_address(host, port, *args, **kwargs):  # the private-address guard resolves names: no DNS in tests
    import socket

    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port or 443))]


class Walk:
    def __init__(self, client, scene):
        self.client, self.scene = client, scene
        self.failures: list[str] = []
        self.calls = 0

    def call(self, method: str, path: str, label: str, *, query=None, body=None, raw=None, fmt="json", headers=None):
        kwargs = {"QUERY_STRING": query} if isinstance(query, str) else {"data": query}
        if method in ("post", "patch", "put"):
            if raw is not None:
                kwargs = {"data": raw, "content_type": "application/json"}
            elif fmt == "multipart":
                kwargs = {"data": body, "format": "multipart"}
            else:
                kwargs = {"data": json.dumps(body), "content_type": "application/json"}
            if isinstance(query, str):
                path = f"{path}?{query}"
        response = getattr(self.client, method)(path, **kwargs, **(headers or {}))
        self.calls += 1
        self.check(response, f"{method.upper()} {path[:120]} [{label}]")
        return response

    def check(self, response, where: str) -> None:
        content = response.content
        if response.status_code >= 500:
            self.failures.append(f"{where}: {response.status_code}")
        elif b"Traceback" in content:
            self.failures.append(f"{where}: a traceback in the body")
        elif response.status_code >= 400:
            try:
                body = json.loads(content)
            except ValueError:
                self.failures.append(f"{where}: {response.status_code} not in JSON: {content[:80]!r}")
                return
            if set(body) != {"error"} or body["error"].get("status") != response.status_code:
                self.failures.append(f"{where}: not the API's error shape: {content[:120]!r}")
            elif len(content) > 20_000:
                self.failures.append(f"{where}: an error of {len(content):,} bytes (a value echoed whole?)")


def valid_path_values(scene) -> dict[str, dict[str, str]]:
    """{path prefix: {parameter: a value naming a real object of the key's workspace}}."""
    workspace = scene.workspace
    job = ImportJob.objects.filter(workspace=workspace).first()
    alert = Alert.objects.filter(workspace=workspace).first()
    batch = BatchCommand.objects.filter(workspace=workspace).first()
    return {
        "/v1/alerts/": {"id": str(alert.pk if alert else 1)},
        "/v1/batch-commands/": {"id": str(batch.pk if batch else 1)},
        "/v1/commands/": {"id": str(scene.command.pk), "deviceType": "battery", "action": "set-reserve"},
        "/v1/contacts/": {"id": str(scene.contact.pk)},
        "/v1/destinations/": {"id": str(scene.destination.pk)},
        "/v1/devices/": {"id": str(scene.device.pk)},
        "/v1/dispatch-events/": {"id": str(scene.dispatch_event.pk)},
        "/v1/dispatch-schedules/": {"id": "1"},
        "/v1/enrollments/": {"id": str(scene.enrollment.pk)},
        "/v1/event-strategies/": {"id": str(scene.strategy.pk)},
        "/v1/events/": {"id": str(scene.event.pk)},
        "/v1/imports/": {"id": str(job.pk)},
        "/v1/metrics/": {"metric": "storage"},
        "/v1/programs/": {"slug": scene.program.slug},
        "/v1/sites/": {"id": str(scene.site.pk)},
    }


def valid_bodies(scene) -> dict[tuple[str, str], dict]:
    start = timezone.now() + timedelta(days=2)
    later = (start + timedelta(hours=1)).isoformat()
    return {
        ("post", "/v1/alerts/{id}/snooze"): {"until": later},
        ("post", "/v1/alerts/{id}/status"): {"status": "ACKNOWLEDGED", "reason": "walk"},
        ("post", "/v1/batch-commands"): {
            "tag": "feeder:1",
            "command": "battery:set-reserve",
            "input": {"chargePercentage": 30},
        },
        ("post", "/v1/commands/{deviceType}/{action}"): {
            "deviceId": scene.device.pk,
            "input": {"chargePercentage": 30},
        },
        ("post", "/v1/destinations"): {"label": "walk", "url": "https://hooks.example.com/walk"},
        ("patch", "/v1/destinations/{id}"): {"label": "walk"},
        ("post", "/v1/dispatch-events"): {
            "programSlug": scene.program.slug,
            "name": "walk",
            "startsAt": start.isoformat(),
            "endsAt": (start + timedelta(hours=2)).isoformat(),
            "actions": [{"type": "discharge", "startsAt": start.isoformat(), "endsAt": later}],
        },
        ("post", "/v1/dispatch-events/{id}/opt-out"): {"deviceId": scene.device.pk, "reason": "walk"},
        ("post", "/v1/dispatch-schedules"): {
            "programSlug": scene.program.slug,
            "name": "walk",
            "type": "discharge",
            "rrule": "FREQ=DAILY",
            "startTime": "17:00",
            "durationMinutes": 60,
            "validFrom": start.date().isoformat(),
        },
        ("post", "/v1/enrollments"): {"deviceId": scene.device.pk, "programSlug": scene.program.slug},
    }


def body_properties(schema: dict, operation: dict) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref")
    if not ref:
        return []
    return list(schema["components"]["schemas"][ref.split("/")[-1]].get("properties", {}))


def walk_operation(walk: Walk, schema: dict, method: str, template: str, operation: dict, bodies: dict, paths):
    prefix = next((p for p in paths if template.startswith(p)), None)
    valid = paths.get(prefix, {})
    parameters = operation.get("parameters", [])
    path_names = [p["name"] for p in parameters if p["in"] == "path"]
    query_names = [p["name"] for p in parameters if p["in"] == "query"]

    def url(**override) -> str:
        path = template
        for name in path_names:
            path = path.replace("{" + name + "}", override.get(name, valid.get(name, "1")))
        return path

    base = bodies.get((method, template), {})
    json_body = method in ("post", "patch", "put") and "application/json" in operation.get("requestBody", {}).get(
        "content", {}
    )
    # odd path values, each parameter in turn
    for name in path_names:
        for value in PATH_VALUES:
            walk.call(method, url(**{name: value}), f"path {name}", body=base if json_body else None)
    # hostile query values, each parameter in turn, and the whole query at once
    for name in query_names:
        for value in QUERY_VALUES:
            walk.call(method, url(), f"query {name}", query={name: value}, body=base if json_body else None)
    if query_names:
        walk.call(method, url(), "every parameter long", query=dict.fromkeys(query_names, "z" * 8000))
    if "cursor" in query_names:
        for value in BAD_CURSORS:
            walk.call(method, url(), "tampered cursor", query={"cursor": value})
    for after, before in RANGES:  # inverted ranges
        if after in query_names and before in query_names:
            walk.call(
                method, url(), "inverted range", query={after: "2030-01-01T00:00:00Z", before: "2020-01-01T00:00:00Z"}
            )
    if not json_body:
        if method in ("post", "patch", "delete") and template != "/v1/imports":
            walk.call(method, url(), "unexpected body", raw="[" * 50_000)
        return
    # bodies: deep, not JSON, not an object, each property hostile in turn, ranges inverted
    for label, raw in [
        ("deep JSON", "[" * 100_000 + "]" * 100_000),
        ("deep object", '{"a":' * 20_000 + "1" + "}" * 20_000),
        ("not JSON", '{"a": '),
        ("NUL escape", '{"name": "\\u0000"}'),
        ("a list", json.dumps([base])),
        ("a string", json.dumps(LONG)),
        ("many keys", json.dumps({f"k{n}": n for n in range(50_000)})),
    ]:
        walk.call(method, url(), label, raw=raw)
    for name in body_properties(schema, operation):
        for value in BODY_VALUES:
            walk.call(method, url(), f"body {name}={str(value)[:12]!r}", body={**base, name: value})
        if isinstance(base.get(name), list) and base[name] and isinstance(base[name][0], dict):
            for key in base[name][0]:
                for value in BODY_VALUES:
                    item = {**base[name][0], key: value}
                    walk.call(method, url(), f"body {name}[0].{key}", body={**base, name: [item]})
    for after, before in RANGES:
        if after in base and before in base:
            walk.call(method, url(), "inverted range", body={**base, after: base[before], before: base[after]})
    walk.call(method, url(), "Idempotency-Key long", body=base, headers={"HTTP_IDEMPOTENCY_KEY": LONG})
    walk.call(method, url(), "Idempotency-Key NUL", body=base, headers={"HTTP_IDEMPOTENCY_KEY": NUL})


def walk_uploads(walk: Walk) -> None:
    """`POST /v1/imports` (multipart): hostile files, names and fields."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        ("fleet.csv", b"referenceId,firstName\n" + b"a\x00b,\x00\n"),
        ("a\x00b.csv", b"referenceId\nx\n"),
        ("../../etc/passwd", b"referenceId\nx\n"),
        ("x" * 5000 + ".csv", b"referenceId\nx\n"),
        ("fleet.xlsx", b"PK\x03\x04" + b"\x00" * 500),
        ("fleet.csv", b""),
        ("fleet.csv", b"\xff\xfe" + "referenceId\n".encode("utf-16-le")),
        ("fleet.csv", b'"' * 10_000),
        ("fleet.csv", ("referenceId," * 5000 + "\n").encode()),
    ]
    for name, data in files:
        walk.call(
            "post", "/v1/imports", f"file {name[:20]!r}", body={"file": SimpleUploadedFile(name, data)}, fmt="multipart"
        )
    for value in [NUL, LONG, "maybe"]:
        upload = SimpleUploadedFile("fleet.csv", b"referenceId\nx\n")
        walk.call("post", "/v1/imports", "dryRun hostile", body={"file": upload, "dryRun": value}, fmt="multipart")
    walk.call("post", "/v1/imports", "no file", body={"dryRun": "true"}, fmt="multipart")


def run_walk():
    scene = build_scene(WorkspaceFactory(), serial_prefix="WALK")
    build_scene(WorkspaceFactory(), serial_prefix="OTHER")  # another tenant's rows
    import_job_create(workspace=scene.workspace, filename="walk.csv", data=b"referenceId\nx\n", actor=None)
    client = api_client_for(scene.workspace)
    client.raise_request_exception = False  # a 500 is recorded as a failure, not raised mid-walk
    walk = Walk(client, scene)
    schema = generated_schema()
    bodies, paths = valid_bodies(scene), valid_path_values(scene)
    operations = [(m, t, op) for t, ops in schema["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 50
    # reads before writes, deletes last: the writes' hostile values should meet the scene's objects as built
    order = {"get": 0, "post": 1, "patch": 1, "put": 1, "delete": 2}
    for method, template, operation in sorted(operations, key=lambda o: order[o[0]]):
        walk_operation(walk, schema, method, template, operation, bodies, paths)
    walk_uploads(walk)
    assert walk.calls > 2000
    assert not walk.failures, f"{len(walk.failures)} of {walk.calls} calls failed:\n" + "\n".join(walk.failures[:40])


@pytest.fixture
def walk_settings():
    with (
        override_settings(API_RATE_LIMIT="1000000/minute"),
        mock.patch("texture_portal.events.webhooks.http_post", _no_network),
        mock.patch("socket.getaddrinfo", _public_address),
    ):
        yield


def test_every_operation_with_hostile_input_on_sqlite(walk_settings):
    if "sqlite" not in django_settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("the PostgreSQL variant walks this database")
    run_walk()


@pytest.mark.postgres
def test_every_operation_with_hostile_input_on_postgresql(walk_settings):
    run_walk()
