"""WEBHOOK_ALLOWED_HOSTS: the private-address guard lets exactly the listed `host:port` pairs through (the demo's
own receiver), and nothing else private; empty (production's default) it changes nothing."""

import pytest

from tests.factories import WorkspaceFactory
from texture_portal.events import services
from texture_portal.events.guard import UnsafeWebhookUrl, webhook_host_port, webhook_url_check

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "host_port"),
    [
        ("http://127.0.0.1:8000/demo/webhook-receiver/", "127.0.0.1:8000"),
        ("http://LOCALHOST:8000/x", "localhost:8000"),
        ("http://localhost/x", "localhost:80"),
        ("https://localhost/x", "localhost:443"),
        ("http://[::1]:8000/x", "[::1]:8000"),
    ],
)
def test_host_port_is_read_as_the_setting_lists_it(url, host_port):
    assert webhook_host_port(url) == host_port


def test_a_listed_host_and_port_pass_and_nothing_else_private(settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:8000", "localhost:8000"]
    webhook_url_check("http://127.0.0.1:8000/demo/webhook-receiver/")
    webhook_url_check("http://localhost:8000/demo/webhook-receiver/")
    for refused in (
        "http://127.0.0.1:8001/demo/webhook-receiver/",  # another port of the same host
        "http://127.0.0.1/demo/webhook-receiver/",  # the default port is port 80, not listed
        "http://10.0.0.5:8000/hook",  # another private host on the listed port
        "http://[::1]:8000/hook",  # the same machine by another name is not listed
        "http://user:pw@127.0.0.1:8000/hook",  # credentials are refused whatever the host
        "ftp://127.0.0.1:8000/hook",
    ):
        with pytest.raises(UnsafeWebhookUrl):
            webhook_url_check(refused)


def test_an_empty_list_refuses_loopback_as_before(settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(UnsafeWebhookUrl, match="private, loopback or reserved"):
        webhook_url_check("http://127.0.0.1:8000/demo/webhook-receiver/")


def test_a_destination_may_point_at_a_listed_receiver(settings):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = False
    settings.WEBHOOK_ALLOWED_HOSTS = [" 127.0.0.1:8000 "]  # spaces from a hand-written variable are ignored
    destination = services.destination_create(
        workspace=WorkspaceFactory(), label="Demo", url="http://127.0.0.1:8000/demo/webhook-receiver/", actor=None
    )
    assert destination.is_active
    with pytest.raises(UnsafeWebhookUrl):
        services.destination_update(destination=destination, data={"url": "http://127.0.0.1:9/"}, actor=None)
