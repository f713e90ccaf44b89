"""The baselines `chatq bench` measures chatq against: a task that does nothing, and a bare
Celery task that POSTs to the provider. Registered only in workers with
``CHATQ_BENCH_TASKS=true`` (``chatq bench`` starts its workers so), never in production."""

from __future__ import annotations

from typing import Any

import requests
from chatq.shared.celery_config import TASK_HTTP_PROBE, TASK_NOOP
from chatq.workers.celery_app import app
from requests.adapters import HTTPAdapter


@app.task(name=TASK_NOOP)
def noop(value: Any = None) -> Any:
    """Does nothing: the baseline that `chatq bench` measures the pipeline against."""
    return value


_probe_session = requests.Session()
_probe_session.trust_env = False
_probe_session.mount("http://", HTTPAdapter(pool_maxsize=1000))  # one per thread, kept


@app.task(name=TASK_HTTP_PROBE)
def http_probe(url: str, body: dict[str, Any]) -> int:
    """POSTs ``body`` to ``url`` once: the bare Celery prototype `chatq bench` measures chatq
    against, with the same pool and the same provider."""
    return _probe_session.post(url, json=body, timeout=60).status_code
