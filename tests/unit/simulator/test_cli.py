"""The simulator's command line builds the same SimConfig that `chatq sim` serves."""

from __future__ import annotations

import pytest
from chatq.simulator.cli import build_parser, config_from_args
from chatq.simulator.config import SimConfig


def test_defaults():
    assert config_from_args([]) == (SimConfig(), "127.0.0.1", 8400)


def test_every_flag():
    config, host, port = config_from_args(
        [
            "--host", "0.0.0.0", "--port", "9000", "--ttft-ms", "150", "--tokens-per-s", "40",
            "--rpm", "60", "--tpm", "10000", "--quantum-s", "0", "--fail-rate", "0.3",
            "--faults", "500,503,timeout,cut", "--hang-s", "5", "--seed", "7", "--echo",
            "--models", "a,b", "--log-size", "100000", "--max-reply-tokens", "32",
            "--context-window", "4096",
        ]
    )  # fmt: skip
    assert (host, port) == ("0.0.0.0", 9000)
    assert config == SimConfig(
        ttft_ms=150,
        tokens_per_s=40,
        rpm=60,
        tpm=10000,
        quantum_s=0,
        fail_rate=0.3,
        faults=("500", "503", "timeout", "cut"),
        hang_s=5,
        seed=7,
        echo=True,
        models=("a", "b"),
        log_size=100000,
        max_reply_tokens=32,
        context_window=4096,
    )


def test_a_bad_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(["--faults", "500,teapot"])
    assert exit_info.value.code == 2
    assert "teapot" in capsys.readouterr().err


def test_help_names_the_context_window():
    assert "--context-window" in build_parser().format_help()
