"""Bulk batches in OpenAI's JSONL format: results, bad lines, shared calls, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

BAD_LINES = {
    7: "{not json",
    100: '{"body": {}}',
    333: "[1, 2]",
    500: '{"custom_id": "x-bad", "body": {"model": "sim-mini", "messages": []}}',
    900: '{"custom_id": "x-url", "url": "/v1/embeddings", "body": {}}',
}


def write_batch(path: Path, lines: int) -> tuple[list[str], int]:
    """``lines`` lines, 30% repeating an earlier prompt, bad ones at BAD_LINES; the valid
    custom_ids and the number of distinct prompts."""
    custom_ids, prompts = [], set()
    with path.open("w") as handle:
        for number in range(1, lines + 1):
            if number in BAD_LINES:
                handle.write(BAD_LINES[number] + "\n")
                continue
            prompt = f"question {number % 70}" if number % 10 < 3 else f"question {number}"
            prompts.add(prompt)
            custom_ids.append(f"req-{number}")
            body = {
                "model": "sim-mini",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": prompt}],
            }
            line = {
                "custom_id": f"req-{number}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
            handle.write(json.dumps(line) + "\n")
    return custom_ids, len(prompts)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def batch_command(stack, *args: str) -> list[str]:
    return [sys.executable, "-m", "chatq", "batch", "run", *args]


stack = stack_fixture(workers=2)


def env(stack) -> dict[str, str]:
    return {**os.environ, "CHATQ_REDIS_URL": stack.redis_url}


def start_until(stack, command: list[str], output: Path, lines: int) -> subprocess.Popen:
    """Starts ``chatq batch run`` and returns once its output has ``lines`` lines."""
    running = subprocess.Popen(
        command, env=env(stack), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def written() -> bool | None:
        assert running.poll() is None, "the batch run ended early"
        return (output.exists() and len(output.read_text().splitlines()) >= lines) or None

    eventually(written, every=0.05)
    return running


def test_a_batch_gives_every_result_reports_bad_lines_and_shares_repeats(stack, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    custom_ids, distinct = write_batch(source, 2000)
    stack.sim_reset()
    run = subprocess.run(
        batch_command(stack, str(source), "-o", str(output)),
        env=env(stack),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = read(output)
    assert [r["custom_id"] for r in results] == custom_ids  # every one, once, in input order
    assert all(r["response"]["status_code"] == 200 for r in results)
    assert results[0]["response"]["body"]["object"] == "chat.completion"
    errors = read(tmp_path / "out.errors.jsonl")
    assert sorted(e["line"] for e in errors) == sorted(BAD_LINES)
    assert all(f"line {e['line']}" in e["error"]["message"] for e in errors)
    calls = stack.sim_stats()["requests"]
    assert calls == distinct, (calls, distinct, len(custom_ids))
    print(f"{len(custom_ids) + len(BAD_LINES)} lines, {calls} provider calls")


def test_a_killed_batch_run_again_writes_each_custom_id_once(stack, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    custom_ids, _ = write_batch(source, 1500)
    command = batch_command(stack, str(source), "-o", str(output), "--window", "50")
    first = start_until(stack, command, output, 300)
    first.send_signal(signal.SIGKILL)
    first.wait()
    partial = len(read(output))
    assert partial < len(custom_ids)
    again = subprocess.run(command, env=env(stack), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    written = [r["custom_id"] for r in read(output)]
    assert sorted(written) == sorted(custom_ids)
    assert len(written) == len(set(written))
    assert len(read(tmp_path / "out.errors.jsonl")) == len(BAD_LINES)


# Two workers that may die: their jobs come back to the survivor within seconds.
fragile = stack_fixture(
    scope="function",
    workers=2,
    sim_args=["--ttft-ms", "50"],
    extra_env={
        "CHATQ_VISIBILITY_TIMEOUT_S": "4",
        "CHATQ_JOB_LEASE_S": "3",
        "CHATQ_WORKER_CONCURRENCY": "20",
    },
)


def test_killing_the_runner_and_a_worker_loses_and_repeats_nothing(fragile, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    custom_ids, _ = write_batch(source, 1200)
    command = batch_command(fragile, str(source), "-o", str(output), "--window", "100")
    first = start_until(fragile, command, output, 200)
    worker = next(p for p in fragile.parts if p.name.startswith("worker worker1"))
    first.send_signal(signal.SIGKILL)
    os.kill(worker.process.pid, signal.SIGKILL)
    first.wait()
    again = subprocess.run(command, env=env(fragile), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    written = [r["custom_id"] for r in read(output)]
    assert sorted(written) == sorted(custom_ids)
    assert len(written) == len(set(written))


def test_a_running_batch_can_be_cancelled_and_shows_its_status(fragile, tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    custom_ids, _ = write_batch(source, 1000)
    command = batch_command(fragile, str(source), "-o", str(output), "--window", "20")
    running = start_until(fragile, command, output, 50)
    chatq = [sys.executable, "-m", "chatq", "batch"]
    cancel = subprocess.run(
        [*chatq, "cancel", str(source)],
        env=env(fragile),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cancel.returncode == 0 and "cancel requested" in cancel.stdout
    assert running.wait(timeout=60) == 0
    assert len(read(output)) < len(custom_ids)
    status = subprocess.run(
        [*chatq, "status", str(source)],
        env=env(fragile),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(status.stdout)["status"] == "cancelled"
