"""The gateway's JSON responses, encoded by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """A JSON response encoded by orjson: the same bytes as Starlette's (UTF-8, compact),
    several times faster to make."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
