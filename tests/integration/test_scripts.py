"""Chained scripts run in one call, each on its own slice of keys and arguments."""

from __future__ import annotations

from chatq.shared.scripts import ScriptCall, chain
from redis import Redis

ECHO = "return {KEYS[1], ARGV[1], #KEYS, #ARGV}"


def test_chained_scripts_see_only_their_own_keys_and_arguments(redis_client: Redis):
    first = ScriptCall(ECHO, ["k1"], ["a1"])
    second = ScriptCall(ECHO + "  -- two of each", ["k2", "k3"], ["a2", "a3"])
    source, script_keys, args = chain([first, second])
    assert (script_keys, args) == (["k1", "k2", "k3"], ["a1", "a2", "a3"])
    reply = redis_client.register_script(source)(keys=script_keys, args=args)
    assert reply == [["k1", "a1", 1, 1], ["k2", "a2", 2, 2]]


def test_a_chained_script_writes_atomically_and_reloads_after_a_flush(redis_client: Redis):
    incr = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    source, script_keys, args = chain([ScriptCall(incr, ["n"], [2]), ScriptCall(incr, ["n"], [3])])
    script = redis_client.register_script(source)
    assert script(keys=script_keys, args=args) == [2, 5]
    redis_client.script_flush()
    assert script(keys=script_keys, args=args) == [7, 10]
