"""API keys: used in turn, a refused key retired for every worker, rotation without restart."""

from __future__ import annotations

import time
from pathlib import Path

from chatq.shared.deployments import RELOAD_CHECK_S
from chatq.shared.jobs import JobStatus
from chatq.workers.health import key_fingerprint

from tests.support.stacks import stack_fixture

DEPLOYMENT = """
[[deployments]]
alias = "sim-mini"
name = "keyed"
base_url = "{url}"
api_keys = {keys}
"""


keyed = stack_fixture(
    scope="function",
    sim_args=["--api-keys", "good-key,new-key"],
    deployments=lambda url: DEPLOYMENT.format(url=url, keys='["bad-key", "good-key"]'),
)


def run(stack, count: int) -> None:
    with stack.client() as client:
        ids = [client.submit(f"keyed {i} {time.time()}", max_tokens=3) for i in range(count)]
        assert [client.result(i, timeout=60).status for i in ids] == [JobStatus.done] * count


def test_a_refused_key_is_retired_and_keys_rotate_without_restart(keyed):
    run(keyed, 20)
    retired = keyed.settings_redis().smembers("chatq:dep:keyed:bad_keys")
    assert retired == {key_fingerprint("bad-key")}
    bad = [e for e in keyed.sim_requests() if e["key_id"] == key_fingerprint("bad-key")]
    assert 1 <= len(bad) <= 10  # tried in turn by the first calls in flight at once...
    assert all(e["outcome"] == "invalid" for e in bad)
    keyed.sim_reset()
    run(keyed, 10)  # ...then never again
    assert {e["key_id"] for e in keyed.sim_requests()} == {key_fingerprint("good-key")}

    path = Path(keyed.env["CHATQ_DEPLOYMENTS_FILE"])
    path.write_text(DEPLOYMENT.format(url=keyed.sim_url, keys='["new-key"]'))
    # Time passing is the behaviour here: a worker process looks at the file again only
    # RELOAD_CHECK_S after its last look; once that has passed for all, every call uses the new
    # key (one call seen using it would not show that of every process).
    time.sleep(RELOAD_CHECK_S + 0.5)
    keyed.sim_reset()
    run(keyed, 10)
    assert {e["key_id"] for e in keyed.sim_requests()} == {key_fingerprint("new-key")}
