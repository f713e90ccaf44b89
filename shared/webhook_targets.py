"""Where a webhook may be sent: a public address, unless the operator allows an internal one.

A tenant names the URL and a worker calls it. Unchecked, any tenant could make workers call
services on their own network (server-side request forgery): the cloud metadata service, the
Redis server, an admin port on loopback. So the host is resolved and every address it
resolves to is checked; the call then goes to the address that was checked (no second DNS
lookup that could answer differently), and redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from chatq.shared.errors import InvalidJob
from chatq.shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]  # host, port -> the addresses it resolves to

CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")


class WebhookRefused(InvalidJob):
    """The webhook URL points somewhere workers must not call."""

    code = "webhook_url_refused"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked destination: connect to ``address``, speak to ``host``."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the resolved address that was checked, to connect to

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass(frozen=True)
class WebhookPolicy:
    """What an operator allows: plain ``http``, and hosts or networks that may be internal
    (``CHATQ_WEBHOOK_ALLOW_HOSTS``: names like ``hooks.internal``, or ``10.1.0.0/16``)."""

    allow_http: bool = False
    allow: tuple[str, ...] = ()

    def allows(self, host: str, address: IPAddress) -> bool:
        for entry in self.allow:
            if entry.lower() == host.lower():
                return True
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False


def webhook_policy(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(
        allow_http=settings.webhook_allow_http, allow=tuple(settings.webhook_allow_hosts)
    )


def resolve_target(
    url: str, policy: WebhookPolicy, resolve: Resolver | None = None
) -> WebhookTarget:
    """The destination of ``url`` if workers may call it; raises ``WebhookRefused`` saying
    why not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_http):
        allowed = "https or http" if policy.allow_http else "https"
        raise WebhookRefused(
            f"Webhook URLs must use {allowed}, not '{scheme or 'nothing'}'.", param="webhook_url"
        )
    host = parts.hostname
    if not host:
        raise WebhookRefused("The webhook URL has no host.", param="webhook_url")
    if parts.username or parts.password:
        raise WebhookRefused("Webhook URLs may not carry credentials.", param="webhook_url")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("The webhook URL's port is not valid.", param="webhook_url") from None
    addresses = _addresses(host, port, resolve or getaddrinfo)
    for address in addresses:
        reason = internal_reason(address)
        if reason is not None and not policy.allows(host, address):
            raise WebhookRefused(
                f"The webhook host '{host}' resolves to {address}, a {reason} address, which "
                "workers do not call. Use a public host, or ask the operator to allow this "
                "one (CHATQ_WEBHOOK_ALLOW_HOSTS).",
                param="webhook_url",
            )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return WebhookTarget(scheme, host, port, path, str(addresses[0]))


def internal_reason(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one. An IPv6 address
    that carries an IPv4 one (mapped, 6to4, Teredo) is judged by the IPv4 one too."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour, _teredo_client(address)):
            if embedded is not None and (reason := internal_reason(embedded)):
                return reason
    checks: Sequence[tuple[str, bool]] = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("carrier-grade NAT", address in CARRIER_GRADE_NAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _teredo_client(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    teredo = address.teredo
    return teredo[1] if teredo else None


def _addresses(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    except (OSError, ValueError) as exc:
        raise WebhookRefused(
            f"The webhook host '{host}' could not be resolved: {exc}.", param="webhook_url"
        ) from None
    if not found:
        raise WebhookRefused(f"The webhook host '{host}' has no address.", param="webhook_url")
    return found


def getaddrinfo(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
