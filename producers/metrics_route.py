"""``/metrics`` on the gateway, in Prometheus text format.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``chatq up`` does), the page sums every process on this
host that writes there, workers included. Queue depth is read from Redis at each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from chatq.shared.job_state.waiting import OTHER, SchedulerView, TenantWait, top_with_other
from chatq.shared.settings import Settings
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis

router = APIRouter()
TOP_TENANTS = 10  # tenants named in the scheduler's metrics; the rest are 'other'


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


class SchedulerWaits(Collector):
    """Jobs waiting in the fair scheduler and the oldest wait, per pool, band and tenant, and
    each tenant's share of the last minute's service: the top tenants by name, the rest as
    'other', so the label sets stay bounded however many tenants there are."""

    def __init__(self, redis: Redis, top: int = TOP_TENANTS):
        self.view = SchedulerView(redis)
        self.top = top

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool", "band", "tenant"]
        waiting = GaugeMetricFamily(
            "chatq_scheduler_waiting_jobs", "Jobs waiting in the fair scheduler.", labels=labels
        )
        oldest = GaugeMetricFamily(
            "chatq_scheduler_oldest_wait_seconds",
            "How long the oldest waiting job has waited.",
            labels=labels,
        )
        groups: dict[tuple[str, str], list[TenantWait]] = {}
        for wait in self.view.waits():
            groups.setdefault((wait.pool, wait.band), []).append(wait)
        for (pool, band), waits in groups.items():
            ranked = sorted(waits, key=lambda w: -w.waiting)
            kept, rest = ranked[: self.top], ranked[self.top :]
            for wait in kept:
                waiting.add_metric([pool, band, wait.tenant], wait.waiting)
                oldest.add_metric([pool, band, wait.tenant], wait.oldest_wait_s)
            if rest:
                waiting.add_metric([pool, band, OTHER], sum(w.waiting for w in rest))
                oldest.add_metric([pool, band, OTHER], max(w.oldest_wait_s for w in rest))
        yield waiting
        yield oldest
        share = GaugeMetricFamily(
            "chatq_scheduler_share",
            "A tenant's share of the weighted service released in the last minute.",
            labels=["tenant"],
        )
        for tenant, value in top_with_other(self.view.shares(), self.top).items():
            share.add_metric([tenant], value)
        yield share


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
    registry.register(SchedulerWaits(redis))
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
