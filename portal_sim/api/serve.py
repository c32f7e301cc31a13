"""``python -m portal_sim serve``: the portal API over a data directory, with uvicorn.

Only the command line builds settings; :func:`settings_from_args` is separate from running the
server so the mapping from options to behaviour can be tested without a socket.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from portal_sim.api.clock import SystemClock, parse_clock
from portal_sim.api.errors import ConfigurationError
from portal_sim.api.settings import ApiSettings, FaultInjection, RateLimit
from portal_sim.api.source import open_source

__all__ = ["add_serve_parser", "run_serve", "settings_from_args"]


def add_serve_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``portal_sim`` command line; its handler is :func:`run_serve`."""
    parser = subparsers.add_parser(
        "serve", parents=list(parents), help="serve the simulated portal API over a data directory",
        description="Serve the simulated 電子申請等情報受取等API (docs/portal-api.md) over DIR.")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="data directory from `generate`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 = any free port)")
    parser.add_argument(
        "--clock", default="real", metavar="SPEC",
        help="the portal's calendar: real | fixed:<ISO> | accelerated:<factor>[@<ISO>] "
             "(accelerated without a start begins at the first arrival)")
    parser.add_argument("--rate", type=float, default=10.0, metavar="N",
                        help="requests per second per token (default 10; 0 = no rate limit)")
    parser.add_argument("--burst", type=int, default=None, metavar="N",
                        help="bucket size (default: twice --rate, at least 1)")
    parser.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS", help="token lifetime (default 3600)")
    parser.add_argument("--fail-every", type=int, default=None, metavar="N", help="answer 503 to every N-th request")
    parser.add_argument("--fail-rate", type=float, default=0.0, metavar="P",
                        help="answer 503 with probability P (seeded by --fail-seed)")
    parser.add_argument("--fail-seed", type=int, default=0, metavar="S", help="seed of the random faults")
    parser.add_argument("--retry-after", type=int, default=1, metavar="SECONDS",
                        help="Retry-After of injected 503s (default 1)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn's log level (default info: one line per request, 受付番号 at most)")
    parser.set_defaults(handler=run_serve)
    return parser


def settings_from_args(args: argparse.Namespace) -> ApiSettings:
    """Settings for the parsed ``serve`` options. With a fixed or accelerated calendar, tokens and the
    rate limit keep running on the wall clock: a token still lasts ``--token-ttl`` real seconds, and a
    client that waits out ``Retry-After`` finds the bucket refilled (a frozen clock never refills it)."""
    first_arrival = None
    if args.clock.startswith("accelerated:") and "@" not in args.clock:
        source = open_source(args.data)
        first_arrival = min((r.arrived_at for r in source.records), default=source.period_start)
    clock = parse_clock(args.clock, default_start=first_arrival)
    if args.rate < 0:
        raise ConfigurationError("--rate must be >= 0")
    rate_limit = None
    if args.rate > 0:
        burst = args.burst if args.burst is not None else max(1, int(args.rate * 2))
        rate_limit = RateLimit(per_second=args.rate, burst=burst)
    return ApiSettings(
        clock=clock,
        session_clock=None if isinstance(clock, SystemClock) else SystemClock(),
        token_ttl=timedelta(seconds=args.token_ttl),
        rate_limit=rate_limit,
        faults=FaultInjection(every=args.fail_every, probability=args.fail_rate, seed=args.fail_seed,
                              retry_after=args.retry_after),
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run uvicorn until interrupted. An unusable data directory or option raises
    :class:`ConfigurationError` (a ``PortalSimError``: ``portal_sim.cli.main`` reports it, exit 1)."""
    # Imported here: `generate` and `linkage` share this command line and need no web server.
    import uvicorn

    from portal_sim.api.app import create_app

    app = create_app(args.data, settings=settings_from_args(args))
    log_level = "warning" if getattr(args, "quiet", False) else args.log_level
    uvicorn.run(app, host=args.host, port=args.port, log_level=log_level, lifespan="off",
                server_header=False)
    return 0
