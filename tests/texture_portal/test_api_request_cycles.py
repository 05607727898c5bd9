"""An API request's objects are freed when its response is closed, not left in cycles for the garbage collector
(texture_portal/api/views.py `release_request_cycles`): DRF links the view, its request and the response in
cycles, which held every page of rows and bodies until a collection, and made about one request in ten pay
for the ones before it (bench/api_latency.py)."""

import gc
import weakref

import pytest
from rest_framework.test import APIRequestFactory

from fleet.api.views import DeviceViewSet
from tests.api_support import api_client_for, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


def test_the_view_request_and_response_are_freed_when_the_response_is_closed():
    workspace = WorkspaceFactory()
    DeviceFactory.create_batch(3, workspace=workspace)
    raw = api_client_for(workspace).raw_key
    view = DeviceViewSet.as_view({"get": "list"})
    gc.collect()
    gc.disable()
    try:
        response = view(APIRequestFactory().get("/v1/devices", HTTP_TEXTURE_API_KEY=raw)).render()
        assert response.status_code == 200 and len(response.data["data"]) == 3
        context = response.renderer_context
        alive = {name: weakref.ref(context[name]) for name in ("view", "request", "response")}
        del context
        response.close()  # what the WSGI server does once the body is sent
        assert len(response.data["data"]) == 3  # the data stays readable (tests read it)
        del response
        assert {name: ref() is None for name, ref in alive.items()} == {
            "view": True,
            "request": True,
            "response": True,
        }
    finally:
        gc.enable()


def test_without_the_release_they_would_wait_for_the_collector(monkeypatch):
    """The check above can fail: with the release undone, the same objects outlive the response."""
    monkeypatch.setattr("texture_portal.api.views.release_request_cycles", lambda view, response: None)
    workspace = WorkspaceFactory()
    raw = api_client_for(workspace).raw_key
    view = DeviceViewSet.as_view({"get": "list"})
    gc.collect()
    gc.disable()
    try:
        response = view(APIRequestFactory().get("/v1/devices", HTTP_TEXTURE_API_KEY=raw)).render()
        alive = weakref.ref(response.renderer_context["view"])
        response.close()
        del response
        assert alive() is not None
        gc.collect()
        assert alive() is None
    finally:
        gc.enable()
