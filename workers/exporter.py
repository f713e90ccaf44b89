"""A worker's own Prometheus exporter, for workers on hosts without a gateway.

Started with the worker when ``CHATQ_WORKER_METRICS_PORT`` is set. In multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) it serves the sum of the host's processes, else this one's.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_ready
from chatq.shared.settings import get_settings
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("chatq.worker")


@worker_ready.connect
def serve_metrics(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    if port is None:
        return
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
    log.info("metrics on http://0.0.0.0:%d/metrics", port)
