"""Docker on a machine that has no Docker Hub: the tools from Debian's packages, a daemon, and
stand-ins for the base images the compose file names, built from Debian's packages.

``python:3.11-slim`` is a ``debootstrap`` of bookworm (whose python3 is 3.11) with pip usable
as root, as in the official image; ``redis:7`` is Debian's ``redis-server`` on top of it, with
the official image's entrypoint behaviour. A stand-in already there is kept, so only a new
machine pays for building them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.waiting import eventually

PYTHON_IMAGE = "python:3.11-slim"
REDIS_IMAGE = "redis:7"
STAND_IN_LABEL = "chatq.stand-in"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's, pip's too
HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")
# The program each Debian package brings, by which a missing one is noticed.
DEBIAN_PACKAGES = {
    "dockerd": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}
# overlay2 where the kernel and the filesystem under /var/lib/docker allow it; vfs (a full copy
# per layer, slow but never refused) where they do not.
STORAGE_DRIVERS = ("overlay2", "vfs")
DAEMON_START_S = 60.0

# As the official image's docker-entrypoint.sh: options alone run redis-server, and Redis
# listens to the other containers without a password (protected mode off).
REDIS_ENTRYPOINT = """#!/bin/sh
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then set -- "$@" --protected-mode no; fi
exec "$@"
"""
REDIS_DOCKERFILE = f"""FROM {PYTHON_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
COPY docker-entrypoint.sh /usr/local/bin/
WORKDIR /data
LABEL {STAND_IN_LABEL}=debian-redis-server
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
"""


def run(command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs ``command``, failing with its output if it fails."""
    done = subprocess.run(list(command), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done


def why_docker_cannot_run() -> str | None:
    """Why this machine cannot run Docker here, or None when it can (maybe after installing)."""
    missing = [name for name in DEBIAN_PACKAGES if shutil.which(name) is None]
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"{', '.join(missing)} missing, and installing them needs root"
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing, and there is no apt-get to install them"
    return None


def install_missing_tools() -> None:
    """Installs, from Debian's packages, whichever of Docker, compose and debootstrap is missing."""
    packages = [pkg for name, pkg in DEBIAN_PACKAGES.items() if shutil.which(name) is None]
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)


def compose_command() -> list[str]:
    """``docker compose`` where the CLI has the plugin, else the standalone ``docker-compose``."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if plugin.returncode == 0 else ["docker-compose"]


def daemon_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@contextlib.contextmanager
def running_daemon(log_dir: Path) -> Iterator[str]:
    """A Docker daemon answering on the default socket until the block ends; one started here
    is stopped after it. Yields the storage driver in use."""
    if daemon_answers():
        yield _storage_driver()
        return
    # Without iptables, published ports still work (docker-proxy) but builds reach no registry.
    iptables = subprocess.run(["iptables", "-L", "-n"], capture_output=True).returncode == 0
    for driver in STORAGE_DRIVERS:
        log = log_dir / f"dockerd-{driver}.log"
        command = ["dockerd", f"--storage-driver={driver}"]
        if not iptables:
            command.append("--iptables=false")
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if _comes_up(daemon):
            try:
                yield driver
            finally:
                _stop(daemon)
            return
        _stop(daemon)
    raise AssertionError(f"dockerd started with none of {STORAGE_DRIVERS}: see {log_dir}")


def _comes_up(daemon: subprocess.Popen[bytes]) -> bool:
    def started() -> bool | None:
        if daemon.poll() is not None:
            return False
        return True if daemon_answers() else None

    return eventually(started, timeout=DAEMON_START_S, every=0.5, what="dockerd answering")


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def _storage_driver() -> str:
    return run(["docker", "info", "-f", "{{.Driver}}"]).stdout.strip()


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def ensure_stand_ins() -> list[str]:
    """Builds whichever base image of the compose file is missing; returns those it built."""
    built = []
    if not image_exists(PYTHON_IMAGE):
        build_python_image()
        built.append(PYTHON_IMAGE)
    if not image_exists(REDIS_IMAGE):
        build_redis_image()
        built.append(REDIS_IMAGE)
    return built


def build_python_image() -> None:
    """``python:3.11-slim`` from a minimal bookworm with python3, pip and venv."""
    with tempfile.TemporaryDirectory(prefix="chatq-rootfs-") as work:
        root = Path(work) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-pip,python3-venv,ca-certificates",
                "bookworm",
                str(root),
            ]
        )
        # As in the official image: pip installs as root, and `python` and `pip` are on PATH.
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        (root / "usr/local/bin/pip").symlink_to("/usr/bin/pip3")
        trust_host_authorities(root)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = [
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"LABEL {STAND_IN_LABEL}=debian-bookworm",
            'CMD ["python3"]',
        ]
        options = [arg for change in changes for arg in ("--change", change)]
        run(["docker", "import", *options, "-", PYTHON_IMAGE], stdin=tar.stdout)
        assert tar.wait() == 0, "tar of the bookworm root failed"


def trust_host_authorities(root: Path) -> None:
    """The image trusts the certificate authorities this machine trusts (an egress proxy's
    own among them): its local ones, kept should the bundle be made again, and the bundle."""
    for local in HOST_LOCAL_CAS.glob("*.crt"):
        shutil.copyfile(local, root / HOST_LOCAL_CAS.relative_to("/") / local.name)
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, root / HOST_CA_BUNDLE.relative_to("/"))


def build_redis_image() -> None:
    """``redis:7`` from Debian's redis-server (7.0 in bookworm), on the python stand-in."""
    with tempfile.TemporaryDirectory(prefix="chatq-redis-image-") as context:
        (Path(context) / "Dockerfile").write_text(REDIS_DOCKERFILE)
        entrypoint = Path(context) / "docker-entrypoint.sh"
        entrypoint.write_text(REDIS_ENTRYPOINT)
        entrypoint.chmod(0o755)
        run(["docker", "build", "-q", "-t", REDIS_IMAGE, context])
