"""The compose file: every service the issue names, health checks, auth on, workers scalable."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_compose_runs_the_whole_stack_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "worker", "gateway", "simulator", "flower"} <= set(services)
    for name in ("redis", "worker", "gateway", "simulator", "flower"):
        assert "healthcheck" in services[name], name
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N works
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["gateway"]["environment"]["CHATQ_AUTH_REQUIRED"].endswith("true}")


def test_flower_asks_for_credentials_and_listens_on_this_host_only():
    flower = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    assert auth.startswith("${CHATQ_FLOWER_BASIC_AUTH:?")  # compose refuses to start without it
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_every_service_comes_back_when_it_dies():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {name: s.get("restart") for name, s in services.items()} == {
        name: "unless-stopped" for name in services
    }
