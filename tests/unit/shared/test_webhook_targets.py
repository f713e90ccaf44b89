"""Where webhooks may go: public addresses over https, internal ones only when allowed."""

from __future__ import annotations

import ipaddress

import pytest
from chatq.shared.webhook_targets import (
    WebhookPolicy,
    WebhookRefused,
    internal_reason,
    resolve_target,
)

HTTP = WebhookPolicy(allow_http=True)


def resolver(table: dict[str, list[str]]):
    return lambda host, port: table[host]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 carrying 127.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_every_non_public_range_is_named(address, reason):
    assert internal_reason(ipaddress.ip_address(address)) == reason


def test_a_public_host_resolves_to_the_address_that_is_then_used():
    target = resolve_target(
        "https://hooks.example.com:8443/in?x=1",
        WebhookPolicy(),
        resolver({"hooks.example.com": ["93.184.216.34"]}),
    )
    assert (target.address, target.port, target.path) == ("93.184.216.34", 8443, "/in?x=1")
    assert target.host_header == "hooks.example.com:8443"


def test_a_name_with_any_internal_address_is_refused():
    lookup = resolver({"sneaky.example.com": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(WebhookRefused, match=r"127\.0\.0\.1, a loopback address"):
        resolve_target("https://sneaky.example.com/", WebhookPolicy(), lookup)


def test_http_needs_the_operators_leave_and_credentials_never_go():
    with pytest.raises(WebhookRefused, match="must use https"):
        resolve_target("http://93.184.216.34/", WebhookPolicy())
    assert resolve_target("http://93.184.216.34/", HTTP).scheme == "http"
    with pytest.raises(WebhookRefused, match="credentials"):
        resolve_target("https://user:pw@93.184.216.34/", WebhookPolicy())


def test_the_allowlist_lets_named_hosts_and_networks_be_internal():
    lookup = resolver({"hooks.internal": ["10.0.0.7"]})
    policy = WebhookPolicy(allow_http=True, allow=("hooks.internal", "192.168.5.0/24"))
    assert resolve_target("http://hooks.internal/", policy, lookup).address == "10.0.0.7"
    assert resolve_target("http://192.168.5.9/", policy).address == "192.168.5.9"
    with pytest.raises(WebhookRefused):
        resolve_target("http://192.168.6.9/", policy)


def test_an_unresolvable_host_is_refused():
    def fail(host, port):
        raise OSError("no such host")

    with pytest.raises(WebhookRefused, match="could not be resolved"):
        resolve_target("https://nowhere.invalid/", WebhookPolicy(), fail)
