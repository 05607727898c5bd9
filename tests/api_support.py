"""Helpers for API tests: a key per workspace, a client that sends it, and a clean rate-limit cache."""

import importlib.util
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from texture_portal.services import api_key_create


def api_client_for(workspace, *, name="test key", header="Texture-Api-Key", **key_fields) -> APIClient:
    api_key, raw = api_key_create(workspace=workspace, name=name, actor=None, **key_fields)
    client = APIClient()
    if header == "Authorization":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    else:
        client.credentials(HTTP_TEXTURE_API_KEY=raw)
    client.api_key = api_key
    client.raw_key = raw
    return client


@pytest.fixture(autouse=False)
def clean_cache():
    """Rate-limit counters live in the cache (Redis db of this run, or local memory): start from zero."""
    cache.clear()
    yield
    cache.clear()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == status and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def load_example_receiver():
    """docs/examples/webhook_receiver.py, the receiver integrators copy (tests run the documented recipe)."""
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
