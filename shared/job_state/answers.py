"""Identical requests' shared answer in Redis: one key per request key naming the job that
leads their call; once that job is done, its record is their cached answer until the key
expires. And the counters of answers shared. ``chatq.workers.coalesce`` decides; this builds its
commands."""

from __future__ import annotations

from chatq.shared import keys
from chatq.shared.job_state import Command
from chatq.shared.scripts import ScriptCall, lua


def join(key: str, job_id: str, *, lead_ms: int, use_cache: bool, now: float) -> ScriptCall:
    """Leads, follows or takes the cached answer (``answer_join.lua`` says how it replies);
    a lead lasts ``lead_ms``."""
    return ScriptCall(
        lua("chatq.shared.job_state", "answer_join.lua"),
        [keys.answer_key(key), keys.CACHE_STATS],
        [job_id, lead_ms, "1" if use_cache else "0", now, keys.job_key("")],
    )


def free(key: str, job_id: str) -> ScriptCall:
    """Frees the key the job led, without an answer to share."""
    return ScriptCall(
        lua("chatq.shared.job_state", "answer_free.lua"), [keys.answer_key(key)], [job_id]
    )


def count(stat: str, amount: int = 1) -> Command:
    """Adds to one of the counters: cache_hits, coalesced, tokens_saved."""
    return Command("hincrby", (keys.CACHE_STATS, stat, amount))
