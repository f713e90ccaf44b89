"""The sample dashboard and alert rules parse, and use only metrics chatq exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
EXPORTED = {
    "chatq_jobs_submitted_total",
    "chatq_jobs_finished_total",
    "chatq_job_retries_total",
    "chatq_job_latency_seconds_bucket",
    "chatq_time_to_first_token_seconds_bucket",
    "chatq_provider_latency_seconds_bucket",
    "chatq_tokens_total",
    "chatq_provider_rate_limited_total",
    "chatq_cache_lookups_total",
    "chatq_limiter_wait_seconds_bucket",
    "chatq_queue_depth",
    "chatq_messages_unacked",
    "chatq_worker_loop_heartbeat_timestamp_seconds",
    "chatq_worker_loop_errors_total",
    "chatq_jobs_reclaimed_total",
}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bchatq_[a-z_]+", expr))


def test_alert_rules_cover_success_rate_latency_and_queue_depth():
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"][0]
    names = {rule["alert"] for rule in rules["rules"]}
    assert {"ChatqSuccessRateLow", "ChatqLatencyP99High", "ChatqQueueBacklog"} <= names
    for rule in rules["rules"]:
        assert metric_names(rule["expr"]) <= EXPORTED, rule["alert"]


def test_dashboard_queries_use_exported_metrics():
    dashboard = json.loads((ROOT / "deploy/grafana/chatq-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= EXPORTED
    assert len(used) >= 10
