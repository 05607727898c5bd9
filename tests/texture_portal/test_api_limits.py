"""The API's limits (README "Limits"): each hostile request of issue #15 answers a 400 in the API's error body,
never a 500 or Django's HTML page, and error texts never echo a value whole."""

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.exceptions import ParseError

from tests.api_scene import build_scene
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory
from texture_portal.api.parsers import json_depth_and_nul_check

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@pytest.fixture
def scene_client():
    scene = build_scene(WorkspaceFactory(), serial_prefix="LIM")
    client = api_client_for(scene.workspace)
    client.raise_request_exception = False  # a 500 is an answer to assert on, not an exception in the test
    return scene, client


def cursor(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- JSON bodies ---------------------------------------------------------------------------------------------


def test_json_nested_100000_levels_is_a_400_not_a_recursion_error(scene_client):
    _, client = scene_client
    deep = "[" * 100_000 + "]" * 100_000
    error = assert_error(client.post("/v1/enrollments", deep, content_type="application/json"), 400, "parse_error")
    assert error["message"] == "JSON nested deeper than 32 levels."


def test_json_deeper_than_the_limit_is_refused_and_the_limit_itself_is_not():
    at_limit = json.loads("[" * 32 + "]" * 32)
    json_depth_and_nul_check(at_limit, max_depth=32)
    json_depth_and_nul_check({"a": {"b": [1, 2, {"c": "d"}]}}, max_depth=4)
    with pytest.raises(ParseError, match="deeper than 32"):
        json_depth_and_nul_check([at_limit], max_depth=32)
    with pytest.raises(ParseError, match="deeper than 3"):
        json_depth_and_nul_check({"a": {"b": [1, 2, {"c": "d"}]}}, max_depth=3)


@override_settings(API_JSON_MAX_DEPTH=3)
def test_json_depth_limit_is_the_setting(scene_client):
    _, client = scene_client
    body = {"deviceId": 1, "programSlug": {"a": {"b": [1]}}}  # four levels
    error = assert_error(client.post("/v1/enrollments", body, format="json"), 400, "parse_error")
    assert error["message"] == "JSON nested deeper than 3 levels."


@pytest.mark.parametrize("body", ['{"reason": "a\\u0000b"}', '{"a\\u0000": 1}', '[{"x": ["\\u0000"]}]'])
def test_nul_anywhere_in_a_json_body_is_a_400(scene_client, body):
    scene, client = scene_client
    url = f"/v1/enrollments/{scene.enrollment.pk}/reject"
    error = assert_error(client.post(url, body, content_type="application/json"), 400, "parse_error")
    assert "NUL" in error["message"]


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul():
    json_depth_and_nul_check(json.loads('{"reason": "a\\\\u0000b"}'), max_depth=32)


# -- cursors -------------------------------------------------------------------------------------------------

TAMPERED = {
    "position not an id": cursor(b"p=abc"),
    "position with NUL": cursor(b"p=1\x00"),
    "position with SQL": cursor(b"p=1' OR 1=1--"),
    "reverse and text position": cursor(b"r=1&p=x"),
    "position past bigint": cursor(b"p=" + b"9" * 30),
    "negative position": cursor(b"p=-5"),
    "not base64": "%%%not-a-cursor",
    "not ascii": cursor("p=é".encode()),
}


@pytest.mark.parametrize("value", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_cursor_is_a_400_saying_the_cursor_is_invalid(scene_client, value):
    _, client = scene_client
    error = assert_error(client.get("/v1/devices", {"cursor": value}), 400, "validation_error")
    assert error["fields"] == {
        "cursor": ["Invalid cursor: use the `next` or `previous` link of a page as it was given."]
    }


@pytest.mark.parametrize(
    "value",
    [cursor(b"p=notadate"), cursor(b"p=2026-01-01 00:00:00"), cursor(b"p=9999-12-31 23:59:59-14:00"), cursor(b"p=1")],
    ids=["not a time", "naive time", "past the calendar in UTC", "an id"],
)
def test_a_tampered_time_cursor_is_a_400(scene_client, value):
    scene, client = scene_client
    response = client.get(f"/v1/devices/{scene.device.pk}/telemetry", {"cursor": value})
    assert assert_error(response, 400, "validation_error")["fields"].keys() == {"cursor"}


def test_the_cursors_the_api_hands_out_still_work(scene_client):
    scene, client = scene_client
    build_scene(scene.workspace, serial_prefix="LIM2")
    first = client.get("/v1/devices", {"perPage": 1}).json()
    assert first["next"]
    second = client.get(first["next"]).json()
    assert len(second["data"]) == 1 and second["data"][0]["id"] != first["data"][0]["id"]
    back = client.get(second["previous"]).json()
    assert back["data"] == first["data"]
    telemetry = client.get(f"/v1/devices/{scene.device.pk}/telemetry", {"perPage": 1}).json()
    assert telemetry["data"]


# -- sizes, counts, NUL and length in the query -------------------------------------------------------------

API_PATHS = ["/v1/devices", "/v1/docs", "/v1/schema", "/v1/no-such-thing", "/v1/imports"]


@pytest.mark.parametrize("path", API_PATHS)
def test_a_6_mb_body_is_the_apis_400_on_every_path(scene_client, path):
    _, client = scene_client
    response = client.post(path, "x" * (6 * 1024 * 1024), content_type="application/json")
    error = assert_error(response, 400, "request_too_large")
    assert error["message"] == "The request body is 6,291,456 bytes; the limit is 5,242,880."


@pytest.mark.parametrize("path", API_PATHS)
def test_40000_query_parameters_are_the_apis_400_on_every_path(scene_client, path):
    _, client = scene_client
    response = client.get(path + "?" + "&".join(["a=1"] * 40_000))
    assert "1,000 query parameters" in assert_error(response, 400, "request_too_large")["message"]


@override_settings(API_UPLOAD_MAX_BYTES=1000)
def test_an_upload_over_its_limit_is_refused_before_it_is_read(scene_client):
    _, client = scene_client
    response = client.post("/v1/imports", {"file": SimpleUploadedFile("fleet.csv", b"x" * 2000)}, format="multipart")
    assert "the limit is 1,000" in assert_error(response, 400, "request_too_large")["message"]


@pytest.mark.parametrize("query", ["state=a%00b", "referenceId=%00", "cursor=%00", "a%00=1", "tag=x&email=y%00"])
def test_nul_in_any_query_parameter_is_a_400_naming_it(scene_client, query):
    _, client = scene_client
    error = assert_error(client.get(f"/v1/devices?{query}"), 400, "validation_error")
    assert list(error["fields"].values()) == [["Query parameters may not contain NUL characters (%00)."]]


def test_a_query_value_over_the_limit_is_a_400_naming_it(scene_client):
    _, client = scene_client
    error = assert_error(client.get("/v1/devices", {"systemIdentifier": "x" * 8193}), 400, "validation_error")
    assert error["fields"] == {"systemIdentifier": ["Longer than 8,192 characters."]}
    assert client.get("/v1/devices", {"systemIdentifier": "x" * 8192}).status_code == 200


def test_a_value_quoted_in_an_error_is_cut(scene_client):
    _, client = scene_client
    error = assert_error(client.get("/v1/devices", {"state": "a" * 8000}), 400, "validation_error")
    (message,) = error["fields"]["state"]
    assert len(message) <= 300 and message.endswith("…")
    assert len(json.dumps(error)) < 1000


def test_a_nul_in_a_header_is_a_400_naming_it(scene_client):
    scene, client = scene_client
    response = client.post(
        "/v1/commands/battery/set-reserve",
        {"deviceId": scene.device.pk, "input": {"chargePercentage": 30}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="a\x00b",
    )
    error = assert_error(response, 400, "validation_error")
    assert error["fields"] == {"Idempotency-Key": ["Headers may not contain NUL characters."]}


def test_more_files_than_the_limit_is_the_apis_400(scene_client):
    _, client = scene_client
    files = {f"file{n}": SimpleUploadedFile(f"f{n}.csv", b"x") for n in range(11)}
    response = client.post("/v1/imports", files, format="multipart")
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in assert_error(response, 400, "request_too_large")["message"]
