"""``chatq bench`` scenario: a bulk batch file through ``chatq batch run``.

Measures what issue 4 asks of bulk batches: provider calls per line when 30% of prompts
repeat, the results and error records, and the runner's peak RSS on a large file against its
peak RSS on a small one (the baseline: memory must stay flat as the file grows).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from chatq.bench_stack import bench_stack
from chatq.processes import python_module_command

MALFORMED = ("{not json", '{"body": {}}', "[1, 2]", '{"custom_id": "bad-body", "body": {}}')
BASELINE_LINES = 1_000


@dataclass
class BulkOptions:
    lines: int = 10_000
    workers: int = 2

    @classmethod
    def quick(cls) -> BulkOptions:
        return cls(lines=2_000)


def write_input(path: Path, lines: int, *, tag: str) -> dict[int, str]:
    """``lines`` lines: 30% repeat an earlier prompt, five are malformed. The malformed lines,
    by line number."""
    bad_at = {max(1, lines * k // 6): MALFORMED[k % len(MALFORMED)] for k in range(1, 6)}
    with path.open("w") as handle:
        for number in range(1, lines + 1):
            if number in bad_at:
                handle.write(bad_at[number] + "\n")
                continue
            repeated = number % 10 < 3
            question = f"{tag} question {number % 97 if repeated else number}"
            body = {
                "model": "sim-mini",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": question}],
            }
            line = {"custom_id": f"req-{number}", "url": "/v1/chat/completions", "body": body}
            handle.write(json.dumps(line) + "\n")
    return bad_at


def measure_bulk(options: BulkOptions, console: Console) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="chatq-bench-bulk-") as scratch,
        bench_stack(console, "Bulk batch", workers=options.workers) as stack,
    ):
        work = Path(scratch)
        env = {**os.environ, **stack.env}
        with console.status(f"Bulk batch: baseline of {BASELINE_LINES} lines..."):
            baseline = _run_batch(work, "small", BASELINE_LINES, env)
        stack.sim_reset()
        with console.status(f"Bulk batch: {options.lines} lines..."):
            large = _run_batch(work, "large", options.lines, env)
        calls = stack.sim_stats()["requests"]
    return {
        "bulk_lines": options.lines,
        "bulk_results": large["results"],
        "bulk_error_records": large["errors"],
        "bulk_bad_lines_named": large["bad_lines_named"],
        "bulk_provider_calls": calls,
        "bulk_calls_per_line": round(calls / options.lines, 3),
        "bulk_seconds": round(large["seconds"], 1),
        "bulk_lines_per_s": round(options.lines / large["seconds"], 1),
        "bulk_runner_peak_rss_mb": large["peak_rss_mb"],
        "bulk_runner_peak_rss_mb_baseline": baseline["peak_rss_mb"],
        "bulk_baseline_lines": BASELINE_LINES,
    }


def _run_batch(work: Path, tag: str, lines: int, env: dict[str, str]) -> dict[str, Any]:
    source, output = work / f"{tag}.jsonl", work / f"{tag}.out.jsonl"
    bad_at = write_input(source, lines, tag=tag)
    command = python_module_command("chatq", "batch", "run", str(source), "-o", str(output))
    started = time.perf_counter()
    runner = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(runner.pid, 0)  # the runner's own rusage: its peak RSS
    runner.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if runner.returncode != 0:
        raise RuntimeError(f"chatq batch run exited with {runner.returncode}")
    errors = [json.loads(line) for line in (work / f"{tag}.out.errors.jsonl").open()]
    named = sorted(e["line"] for e in errors if e.get("line") is not None)
    with output.open() as results:
        result_count = sum(1 for _ in results)
    return {
        "results": result_count,
        "errors": len(errors),
        "bad_lines_named": named == sorted(bad_at),
        "seconds": seconds,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports kilobytes
    }
