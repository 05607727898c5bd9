"""The private-address guard (SSRF): the URLs a destination may point at and the portal may POST to."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from texture_portal.exceptions import ApplicationError


class UnsafeWebhookUrl(ApplicationError):
    """The URL is not one the portal may POST to."""


class WebhookHostUnresolved(UnsafeWebhookUrl):
    """The host did not resolve (now). Refused when a destination is saved, but at delivery time a transient
    resolver failure: retried like a timeout, never a reason to deactivate the destination on its own."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and may be routed to: IPv4-mapped (::ffff:a.b.c.d), 6to4
    (2002:aabb:ccdd::/48), NAT64 (64:ff9b::a.b.c.d) or the deprecated IPv4-compatible form (::a.b.c.d)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not :: or ::1 (judged as IPv6)
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not (embedded.is_global and not embedded.is_multicast):
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def webhook_host_port(url: str) -> str:
    """`host:port` of a URL as WEBHOOK_ALLOWED_HOSTS lists it: the host in lowercase (an IPv6 one in brackets),
    the port explicit or the scheme's default. Raises ValueError for a port that is not one."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def webhook_host_allowed(url: str) -> bool:
    """Whether the URL's host and port are on WEBHOOK_ALLOWED_HOSTS (the demo's own receiver)."""
    allowed = {entry.strip().lower() for entry in settings.WEBHOOK_ALLOWED_HOSTS if entry.strip()}
    if not allowed:
        return False
    try:
        return webhook_host_port(url) in allowed
    except ValueError:
        return False


def webhook_url_check(url: str) -> None:
    """Refuse URLs that are not http(s), carry credentials, or resolve to a private, loopback, link-local or
    otherwise non-public address (unless ALLOW_PRIVATE_WEBHOOK_URLS, for local development, or the URL's exact
    `host:port` is on WEBHOOK_ALLOWED_HOSTS: the demo's receiver). Checked when a destination is saved and again
    before every attempt (DNS can change in between).

    A host that does not resolve raises WebhookHostUnresolved (retryable at delivery time). Known gap: the
    connection is not pinned to the address checked here, so a DNS answer that changes between this check and
    requests' own lookup (DNS rebinding, a window of milliseconds) is not caught."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise UnsafeWebhookUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The URL must not contain a user name or password.")
    if settings.ALLOW_PRIVATE_WEBHOOK_URLS or webhook_host_allowed(url):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError, UnicodeError) as exc:
        raise WebhookHostUnresolved(f"The host “{parts.hostname}” does not resolve.") from exc
    for info in infos:
        address = info[4][0]
        if not _is_public(address):
            raise UnsafeWebhookUrl(
                f"The host “{parts.hostname}” resolves to {address}, a private, loopback or reserved address."
            )
