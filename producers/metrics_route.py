"""``/metrics`` on the gateway, in Prometheus text format.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``chatq up`` does), the page sums every process on this
host that writes there, workers included. Queue depth is read from Redis at each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from chatq.shared.settings import Settings
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis

router = APIRouter()


class QueueDepth(Collector):
    """Messages waiting in each queue, and messages taken but not yet acknowledged."""

    def __init__(self, redis: Redis, settings: Settings):
        self.redis = redis
        self.queues = {"interactive": settings.interactive_queue, "bulk": settings.bulk_queue}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "chatq_queue_depth", "Messages waiting in a queue.", labels=["queue"]
        )
        with self.redis.pipeline(transaction=False) as pipe:
            for name in self.queues.values():
                pipe.llen(name)
            pipe.hlen("unacked")  # kombu's Redis transport: delivered, not yet acknowledged
            *lengths, unacked = pipe.execute()
        for label, length in zip(self.queues, lengths, strict=True):
            depth.add_metric([label], length)
        yield depth
        yield GaugeMetricFamily(
            "chatq_messages_unacked",
            "Messages a worker holds and has not acknowledged.",
            value=unacked,
        )


class ThisProcess(Collector):
    """The metrics of this process alone (when no multiprocess directory is set)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def build_registry(redis: Redis, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(ThisProcess())
    registry.register(QueueDepth(redis, settings))
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
