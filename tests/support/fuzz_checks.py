"""chatq's own check for the schemathesis run (loaded as ``SCHEMATHESIS_HOOKS``): an error
message shows no more than a short prefix of any value the request sent."""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.support.echoes import MAX_ECHO_CHARS, echoes, strings_in


@schemathesis.check
def short_echoes_only(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]["message"]
    except Exception:  # not our error shape: the other checks judge that
        return
    sent = [case.path_parameters, case.query, case.headers, case.body]
    for value in strings_in(sent):
        if echoes(value, message):
            raise AssertionError(
                f"The error message echoes more than {MAX_ECHO_CHARS} characters of a sent "
                f"value ({len(value)} characters): {message[:200]!r}"
            )
