"""Identical requests' shared answer in Redis: one key per request key holding the leader's
claim on the call (``lead:<job id>``), then the cached answer (``done:<ChatResult JSON>``),
and the counters of answers shared. ``workers.coalesce`` decides; this builds its commands."""

from __future__ import annotations

from shared import keys
from shared.job_state import Command
from shared.scripts import ScriptCall, lua


def join(key: str, job_id: str, *, lease_ms: int, use_cache: bool) -> ScriptCall:
    """Leads, follows or takes the cached answer (``answer_join.lua`` says how it replies)."""
    return ScriptCall(
        lua("shared.job_state", "answer_join.lua"),
        [keys.answer_key(key), keys.CACHE_STATS],
        [job_id, lease_ms, "1" if use_cache else "0"],
    )


def done(key: str, job_id: str, *, answer: str, cache_ttl_s: int) -> ScriptCall:
    """Frees the key the job led, or caches ``answer`` (a ChatResult's JSON; '' for none)."""
    return ScriptCall(
        lua("shared.job_state", "answer_done.lua"),
        [keys.answer_key(key)],
        [job_id, answer, cache_ttl_s],
    )


def count(stat: str, amount: int = 1) -> Command:
    """Adds to one of the counters: cache_hits, coalesced, tokens_saved."""
    return Command("hincrby", (keys.CACHE_STATS, stat, amount))
