"""`python -m reliability [--full] [--only NAME]`: run the figures and print the report."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per figure (tried, held, failed, seconds) and the notes; exit 1 when any failed."""
    from .suite import FIGURES

    parser = argparse.ArgumentParser(prog="invoke reliability", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full sweep (default: the short CI sample)")
    parser.add_argument("--short", action="store_true", help="the short sample (the default)")
    parser.add_argument("--only", action="append", default=[], help="run only figures whose function name has this")
    args = parser.parse_args(list(argv) if argv is not None else None)
    short = not args.full
    figures = [f for f in FIGURES if not args.only or any(o in f.__name__ for o in args.only)]
    started = time.monotonic()
    print(f"Reliability ({'short' if short else 'full'} sweep)")
    print(f"{'figure':<26} {'tried':>6} {'held':>6} {'failed':>6} {'seconds':>8}")
    failed = 0
    for fn in figures:
        fig = fn(short)
        failed += fig.failed
        print(f"{fig.name:<26} {fig.tried:>6} {fig.held:>6} {fig.failed:>6} {fig.seconds:>8.1f}", flush=True)
        failures = [n for n in fig.notes if n.startswith("FAILED")]
        shown = [n for n in fig.notes if not n.startswith("FAILED")][:3] + failures[:15]
        for note in shown:
            print(f"    {note}")
    print(f"total {time.monotonic() - started:.1f} s; {'all held' if not failed else f'{failed} failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
