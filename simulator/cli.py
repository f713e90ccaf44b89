"""The simulator's command line, shared by ``python -m simulator`` and ``chatq sim``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from chatq.simulator.config import FAULT_KINDS, SimConfig
from chatq.simulator.server import serve

EPILOG = """\
answers are deterministic: the same request body always gets the same answer.
  tools        with 'tools' (and tool_choice not "none"), every function named in the
               last user message is called (a named tool_choice: that one; "required"
               with none named: the first); arguments are built from the parameters
               schema, the first string being the last user message verbatim
  reasoning    models whose name contains "reason" send reasoning_content first
  refusal      a last user message containing "sim:refuse" is refused
  also         n choices (streamed too), logprobs, response_format json_object and
               json_schema, stop, seed, and OpenAI's 400s for bad tool messages and
               prompts over --context-window
"""


def build_parser(prog: str = "python -m simulator") -> argparse.ArgumentParser:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="An OpenAI-compatible chat completions simulator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8400)
    add("--ttft-ms", type=float, default=defaults.ttft_ms, help="wait before the first token")
    add("--tokens-per-s", type=float, default=defaults.tokens_per_s, help="0: no wait")
    add("--rpm", type=int, default=None, help="requests per minute (default: no limit)")
    add("--tpm", type=int, default=None, help="tokens per minute (default: no limit)")
    add(
        "--quantum-s",
        type=float,
        default=defaults.quantum_s,
        help="limits also hold pro rata over any window this long (0: per minute only)",
    )
    add("--fail-rate", type=float, default=defaults.fail_rate, help="probability of a fault")
    add(
        "--faults",
        default=",".join(defaults.faults),
        help=f"comma-separated kinds drawn when a fault fires: {','.join(FAULT_KINDS)}",
    )
    add("--hang-s", type=float, default=defaults.hang_s, help="length of a 'timeout' fault")
    add("--seed", type=int, default=defaults.seed, help="seed of the fault draws")
    add("--echo", action="store_true", help="text answers repeat the last user message")
    add("--models", default=None, help="comma-separated model names (default: any name)")
    add("--log-size", type=int, default=defaults.log_size, help="request bodies kept")
    add("--api-keys", default=None, help="comma-separated keys accepted; default: any")
    add(
        "--max-reply-tokens",
        type=int,
        default=defaults.max_reply_tokens,
        help="longest generated sentence, in tokens",
    )
    add(
        "--context-window",
        type=int,
        default=defaults.context_window,
        help="tokens a request's prompt plus max_tokens may hold (else a 400 "
        "context_length_exceeded)",
    )
    return parser


def config_from_args(
    argv: Sequence[str] | None = None, prog: str = "python -m simulator"
) -> tuple[SimConfig, str, int]:
    """(config, host, port) from command-line arguments; exits with a usage error if bad."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = SimConfig(
            ttft_ms=args.ttft_ms,
            tokens_per_s=args.tokens_per_s,
            rpm=args.rpm,
            tpm=args.tpm,
            quantum_s=args.quantum_s,
            fail_rate=args.fail_rate,
            faults=_names(args.faults) or (),
            hang_s=args.hang_s,
            seed=args.seed,
            echo=args.echo,
            models=_names(args.models),
            log_size=args.log_size,
            max_reply_tokens=args.max_reply_tokens,
            api_keys=_names(args.api_keys),
            context_window=args.context_window,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config, args.host, args.port


def _names(text: str | None) -> tuple[str, ...] | None:
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    return names or None


def main(argv: Sequence[str] | None = None) -> None:
    config, host, port = config_from_args(argv)
    serve(config, host, port)
