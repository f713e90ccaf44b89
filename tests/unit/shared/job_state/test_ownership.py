"""Every Redis key of a job is built in one place, ``chatq.shared.job_state``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
JOB_KEYS = re.compile(
    r"keys\.(job_key|events_key|answer_key|PENDING|DEFERRED|DEAD_LETTERS|DEAD_LETTER_JOBS"
    r"|CACHE_STATS|SWEEPER)\b|chatq:(job|events|answer|pending|deferred|dlq|sweeper)[:\"']"
)


def test_no_key_of_a_job_is_named_outside_the_job_state_package():
    owner = ROOT / "shared" / "job_state"
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("shared", "workers", "producers", "chatq", "simulator")
        for path in (ROOT / package).rglob("*.py")
        if owner not in path.parents and path.name != "keys.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if JOB_KEYS.search(line) and not line.lstrip().startswith(('"""', "#"))
    ]
    assert offenders == []
