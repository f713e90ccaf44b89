"""The chatq command's entry: gevent's patches come first for a gevent worker."""

from __future__ import annotations

import pytest

from chatq.command import _gevent_worker


@pytest.mark.parametrize(
    ("argv", "env", "gevent"),
    [
        (["worker", "--pool=gevent"], None, True),
        (["worker", "--pool", "gevent"], None, True),
        (["worker", "--pool", "threads"], "gevent", False),
        (["worker"], "gevent", True),
        (["worker"], None, False),
        (["gateway"], "gevent", False),
        ([], "gevent", False),
    ],
)
def test_a_gevent_worker_is_known_before_anything_is_imported(
    argv, env, gevent, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    if env is None:
        monkeypatch.delenv("CHATQ_WORKER_POOL", raising=False)
    else:
        monkeypatch.setenv("CHATQ_WORKER_POOL", env)
    assert _gevent_worker(argv) is gevent


def test_the_pool_may_come_from_a_dotenv_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHATQ_WORKER_POOL", raising=False)
    (tmp_path / ".env").write_text("CHATQ_WORKER_POOL='gevent'\n")
    assert _gevent_worker(["worker"])
