"""The gateway fuzzed from its own OpenAPI document with schemathesis, against a real stack:
no 5xx, every response in the documented status, content type and schema, and no error
message echoing more than a short prefix of a value sent (``tests.support.fuzz_checks``).

The headers the gateway reads (``X-Session-Id``, ``Idempotency-Key``, ``traceparent``,
``Last-Event-ID``) are in the document, so they are fuzzed with the rest; strings are drawn
from all of Unicode, NUL included. The same command runs against `chatq up` (see the README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.stacks import stack_fixture

REPO = Path(__file__).resolve().parents[2]

# positive_data_acceptance is left out: a request can match the schema and still be refused,
# for a model no deployment serves (the list changes at run time) or a tool message with no
# tool_call_id (a rule between fields that the schema does not state).
CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


# The plain gateway stack of test_gateway, booted once for both.
gateway_stack = stack_fixture(shared="gateway", gateway=True)


def test_the_gateway_keeps_to_its_openapi_document(gateway_stack, tmp_path: Path):
    gateway = gateway_stack.gateway_url.removesuffix("/v1")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{gateway}/openapi.json",
        *CHECKS,
        "--generation-allow-x00",
        "true",
        "--max-examples",
        "30",
        "--seed",
        "20261125",
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.support.fuzz_checks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary
    assert "Tested: " in summary
