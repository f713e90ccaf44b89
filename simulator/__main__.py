"""``python -m simulator`` / ``chatq sim``: run the provider simulator."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from simulator.config import FAULT_KINDS, SimConfig
from simulator.server import serve


def parse_args(argv: Sequence[str] | None = None) -> tuple[SimConfig, str, int]:
    parser = argparse.ArgumentParser(
        prog="chatq sim", description="An OpenAI-compatible chat API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="0: no delay")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per minute")
    parser.add_argument(
        "--burst-s", type=float, default=1.0, help="seconds' worth of the limits usable at once"
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests failed")
    parser.add_argument(
        "--faults",
        default="500,503",
        help=f"comma-separated kinds drawn on failure: {','.join(FAULT_KINDS)}",
    )
    parser.add_argument("--hang-s", type=float, default=60.0, help="length of a timeout fault")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--echo", action="store_true", help="reply with the last user message")
    parser.add_argument("--models", default=None, help="comma-separated; default: any name")
    parser.add_argument("--log-size", type=int, default=1000)
    parser.add_argument("--max-reply-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    config = SimConfig(
        ttft_ms=args.ttft_ms,
        tokens_per_s=args.tokens_per_s,
        rpm=args.rpm,
        tpm=args.tpm,
        burst_s=args.burst_s,
        fail_rate=args.fail_rate,
        faults=tuple(k.strip() for k in args.faults.split(",") if k.strip()),
        hang_s=args.hang_s,
        seed=args.seed,
        echo=args.echo,
        models=tuple(args.models.split(",")) if args.models else None,
        log_size=args.log_size,
        max_reply_tokens=args.max_reply_tokens,
    )
    return config, args.host, args.port


def main(argv: Sequence[str] | None = None) -> None:
    config, host, port = parse_args(argv)
    serve(config, host, port)


if __name__ == "__main__":
    main()
