"""The deployment registry: re-read on change, never half-seen by a concurrent caller."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import chatq.shared.deployments as deployments_module
import pytest
from chatq.shared.deployments import RELOAD_CHECK_S, DeploymentRegistry
from chatq.shared.settings import Settings

FILE = """
[[deployments]]
alias = "chat"
name = "{name}"
base_url = "http://127.0.0.1:1/v1"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def registry_on(tmp_path: Path, clock: Clock) -> tuple[DeploymentRegistry, Path]:
    path = tmp_path / "deployments.toml"
    path.write_text(FILE.format(name="first"))
    settings = Settings(_env_file=None, deployments_file=path)
    return DeploymentRegistry(settings, clock=clock), path


def rewrite(path: Path, name: str) -> None:
    mtime = path.stat().st_mtime
    path.write_text(FILE.format(name=name))
    os.utime(path, (mtime + 1, mtime + 1))


def test_a_changed_file_is_read_at_the_next_check(tmp_path):
    clock = Clock()
    registry, path = registry_on(tmp_path, clock)
    rewrite(path, "second")
    assert registry.for_alias("chat")[0].name == "first"  # checked at most every few seconds
    clock.now += RELOAD_CHECK_S
    assert registry.for_alias("chat")[0].name == "second"


def test_a_caller_arriving_during_a_reload_waits_for_the_new_deployments(tmp_path, monkeypatch):
    clock = Clock()
    registry, path = registry_on(tmp_path, clock)
    rewrite(path, "second")
    clock.now += RELOAD_CHECK_S
    reading, release = threading.Event(), threading.Event()
    load = deployments_module.load_deployments

    def slow_load(file: Path):
        reading.set()
        release.wait(5)
        return load(file)

    monkeypatch.setattr(deployments_module, "load_deployments", slow_load)
    first = threading.Thread(target=registry.for_alias, args=("chat",))
    first.start()
    assert reading.wait(5)
    seen: list[str] = []
    second = threading.Thread(target=lambda: seen.append(registry.for_alias("chat")[0].name))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # held until the reload in progress is done
    release.set()
    first.join(5)
    second.join(5)
    assert seen == ["second"]


@pytest.mark.parametrize("broken", ["not toml [", "[[deployments]]\nalias = 'chat'\n"])
def test_a_broken_file_keeps_the_deployments_in_force(tmp_path, broken):
    clock = Clock()
    errors: list[Exception] = []
    path = tmp_path / "deployments.toml"
    path.write_text(FILE.format(name="first"))
    settings = Settings(_env_file=None, deployments_file=path)
    registry = DeploymentRegistry(settings, clock=clock, on_error=errors.append)
    mtime = path.stat().st_mtime
    path.write_text(broken)
    os.utime(path, (mtime + 1, mtime + 1))
    clock.now += RELOAD_CHECK_S
    assert registry.for_alias("chat")[0].name == "first"
    assert len(errors) == 1
