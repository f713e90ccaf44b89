"""The kombu methods chatq's broker layer overrides or calls are the ones it was written
against: a new kombu that changes one fails here, before a worker misbehaves."""

from __future__ import annotations

import hashlib
import inspect
import io
import re
import tokenize
from pathlib import Path

import kombu
import pytest
from chatq.shared import broker
from chatq.shared.celery_config import BROKER_SENTINEL_TRANSPORT, BROKER_TRANSPORT
from kombu.message import Message
from kombu.transport import redis as kombu_redis

# (class, method): its signature in every kombu release the bounds allow.
SIGNATURES = {
    (kombu_redis.QoS, "__init__"): "(self, *args, **kwargs)",
    (kombu_redis.QoS, "append"): "(self, message, delivery_tag)",
    (kombu_redis.QoS, "ack"): "(self, delivery_tag)",
    (kombu_redis.QoS, "reject"): "(self, delivery_tag, requeue=False)",
    (kombu_redis.QoS, "restore_by_tag"): "(self, tag, client=None, leftmost=False)",
    (kombu_redis.QoS, "pipe_or_acquire"): "(self, pipe=None, client=None)",
    (kombu_redis.QoS, "can_consume_max_estimate"): "(self)",
    (kombu_redis.Channel, "_connparams"): "(self, asynchronous=False)",
    (kombu_redis.Channel, "_create_client"): "(self, asynchronous=False)",
    (kombu_redis.Channel, "_brpop_read"): "(self, **options)",
    (kombu_redis.Channel, "_do_restore_message"): (
        "(self, payload, exchange, routing_key, pipe, leftmost=False)"
    ),
    (kombu_redis.Channel, "conn_or_acquire"): "(self, client=None)",
    (Message, "_decode"): "(self)",
}

# kombu's ``Channel._brpop_read``, which chatq's replaces whole: its code (comments and
# layout aside) in the releases tested. 5.4.0 to 5.6.2; 5.7.0 adds the re-auth flush.
BRPOP_READ_TESTED = {"f665bfaed2ae", "a7dd408c36d6"}


def code_digest(function: object) -> str:
    """A digest of a function's tokens, leaving out comments and layout."""
    source = inspect.getsource(function)  # type: ignore[arg-type]
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    tokens = tokenize.generate_tokens(io.StringIO(inspect.cleandoc("\n" + source)).readline)
    text = " ".join(t.string for t in tokens if t.type not in skipped)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("owner", "name"), list(SIGNATURES), ids=lambda v: getattr(v, "__name__", v)
)
def test_an_overridden_kombu_method_keeps_its_signature(owner, name):
    assert str(inspect.signature(getattr(owner, name))) == SIGNATURES[(owner, name)], (
        f"kombu {kombu.__version__} changed {owner.__name__}.{name}: review chatq.shared.broker"
    )


def test_kombus_brpop_read_is_the_code_chatqs_replaces():
    digest = code_digest(kombu_redis.Channel._brpop_read)
    assert digest in BRPOP_READ_TESTED, (
        f"kombu {kombu.__version__} changed Channel._brpop_read (digest {digest}): carry the "
        "change into chatq.shared.broker's _brpop_read, then add the digest here"
    )


def test_chatqs_channels_carry_its_changes():
    for channel in (broker.Channel, broker.SentinelChannel):
        assert channel.QoS is broker.QoS and channel.Message is broker.Message
        assert channel._brpop_read is broker._ChannelChanges._brpop_read
    assert broker.Transport.Channel is broker.Channel
    assert broker.SentinelTransport.Channel is broker.SentinelChannel


@pytest.mark.parametrize("version", ["5.3.7", "5.8.0", "6.0.0"])
def test_a_kombu_outside_the_bounds_is_refused_with_what_to_do(version):
    with pytest.raises(ImportError, match=r"pip install 'kombu>=5.4,<5.8'"):
        broker._check_kombu_version(version)


@pytest.mark.parametrize("version", ["5.4.0", "5.7.0", "5.7.12"])
def test_a_kombu_within_the_bounds_is_taken(version):
    broker._check_kombu_version(version)


def test_fast_loads_reads_plain_and_typed_json():
    assert broker.fast_loads(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert broker.fast_loads(memoryview(b'{"n": 100000000000000000000000}')) == {
        "n": 100000000000000000000000
    }
    typed = b'{"at": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}}'
    assert broker.fast_loads(typed)["at"].year == 2026


@pytest.mark.parametrize(
    ("transport", "url", "scheme"),
    [
        (BROKER_TRANSPORT, "redis://127.0.0.1:6379/0", "redis://"),
        (BROKER_SENTINEL_TRANSPORT, "sentinel://127.0.0.1:26379/0", "sentinel://"),
    ],
)
def test_a_connection_names_chatqs_transport_by_the_scheme_it_serves(transport, url, scheme):
    assert broker.Connection(url, transport=transport).as_uri().startswith(scheme)


def test_no_module_but_the_broker_touches_a_private_kombu_name():
    root = Path(__file__).resolve().parents[3]
    private = re.compile(r"from kombu[\w.]* import [^\n]*\b_\w|kombu\w*\.(?:\w+\.)*_[a-z]\w*")
    offenders = [
        str(path.relative_to(root))
        for folder in ("chatq", "producers", "workers", "shared", "simulator")
        for path in (root / folder).rglob("*.py")
        if path.name != "broker.py" and private.search(path.read_text())
    ]
    assert offenders == []
