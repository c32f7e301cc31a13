"""Command line: ``python -m portal_sim generate|linkage`` (and ``serve``, the portal API).

Exit codes: 0 done, 1 the work failed (bad data directory, I/O error, options out of range),
2 usage error (argparse). The wall clock is read here, at the edge, and only to default
``--start`` to today (JST); pass ``--start`` for reproducible output. Nothing printed or logged
contains personal data: counts, paths and receipt numbers only.

Each subcommand is one ``add_parser`` plus ``set_defaults(handler=…)``; :func:`main` calls the
handler. To add a command, register it in :func:`build_parser` the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from portal_sim import __version__
from portal_sim.api.serve import add_serve_parser
from portal_sim.datadir import JST, DataDir
from portal_sim.errors import PortalSimError

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def default_key_cache() -> Path:
    """``$XDG_CACHE_HOME/shinsei/portal-sim-keys`` (``~/.cache/…`` without XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shinsei" / "portal-sim-keys"


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


# -- generate --------------------------------------------------------------------------------------


def _add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    g = sub.add_parser("generate", parents=[common], help="generate a data directory (residents, PKI, packages)")
    g.add_argument("--out", type=Path, required=True, help="the data directory to create (must not exist or be empty)")
    g.add_argument("--residents", type=_positive, default=300, help="number of residents (default 300)")
    g.add_argument("--applications", type=int, default=1000, help="number of applications (default 1000)")
    g.add_argument("--seed", type=int, default=0, help="everything derives from it (default 0)")
    g.add_argument("--start", type=_date, default=None,
                   help="first day of the simulated period, YYYY-MM-DD (default: today in JST)")
    g.add_argument("--days", type=_positive, default=30, help="length of the period in days (default 30)")
    g.add_argument("--defect-rate", type=float, default=0.05,
                   help="share of deliberately defective packages, 0–1 (default 0.05)")
    g.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1,
                   help="worker processes for key derivation and packaging (default: CPU count)")
    cache = g.add_mutually_exclusive_group()
    cache.add_argument("--key-cache", type=Path, default=None,
                       help="where derived RSA keys are cached (default: $XDG_CACHE_HOME/shinsei/portal-sim-keys)")
    cache.add_argument("--no-key-cache", action="store_true", help="derive every key afresh")
    g.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from portal_sim.generate import GenerateOptions, generate

    start = args.start or datetime.now(JST).date()
    options = GenerateOptions(start=start, residents=args.residents, applications=args.applications,
                              seed=args.seed, days=args.days, defect_rate=args.defect_rate)
    key_cache = None if args.no_key_cache else (args.key_cache or default_key_cache())
    data = generate(args.out, options, key_cache=key_cache, jobs=args.jobs, progress=_show_progress(args))
    counts = data.manifest.counts
    print(f"{data.path}: {counts.applications} applications ({counts.defective} defective) from "
          f"{counts.residents} residents, {options.period_start.isoformat()} + {options.days} days")
    return EXIT_OK


# -- linkage ---------------------------------------------------------------------------------------


def _add_linkage(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    k = sub.add_parser("linkage", parents=[common], help="write the 番号紐付情報 CSV (full, or a delta)")
    k.add_argument("--data", type=Path, required=True, help="a data directory written by `generate`")
    k.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    k.add_argument("--delta-since", type=_date, default=None,
                   help="write the changes from 00:00 JST of this day instead of a full export")
    k.add_argument("--as-of", type=_date, default=None,
                   help="the export's moment, 00:00 JST of this day (default: the end of the simulated period)")
    k.set_defaults(handler=run_linkage)


def run_linkage(args: argparse.Namespace) -> int:
    from portal_sim.datadir import atomic_write
    from portal_sim.linkage import delta_export, full_export, to_csv

    data = DataDir(args.data)
    if args.as_of is not None:
        as_of = datetime.combine(args.as_of, datetime.min.time(), JST)
    else:
        end = data.manifest.period_end
        if end is None:
            raise PortalSimError("the manifest has no period length: pass --as-of")
        as_of = end
    residents = data.residents()
    if args.delta_since is None:
        rows = full_export(residents, as_of=as_of)
    else:
        since = datetime.combine(args.delta_since, datetime.min.time(), JST)
        if since > as_of:
            raise PortalSimError("--delta-since is after the export's moment (--as-of)")
        rows = delta_export(residents, since=since, as_of=as_of)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, to_csv(rows), mode=0o600)
    kind = "full" if args.delta_since is None else f"delta since {args.delta_since.isoformat()}"
    print(f"{args.out}: {len(rows)} rows ({kind}, as of {as_of.isoformat()})")
    return EXIT_OK


# -- parser and entry point ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m portal_sim`` parser; every subcommand sets ``handler``."""
    parser = argparse.ArgumentParser(prog="python -m portal_sim",
                                     description="A stand-in for the national portal (マイナポータル).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("-v", "--verbose", action="store_true", help="log what is done (no personal data)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(sub, common)
    _add_linkage(sub, common)
    add_serve_parser(sub, parents=[common])  # the portal API; its handler is portal_sim.api.serve.run_serve
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose and not args.quiet else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except (PortalSimError, OSError) as exc:
        # Our messages carry no personal data; an OSError names a path at most.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code
