"""Print every figure with its baseline, ratio and goal (``python -m benchmarks --help``)."""

from __future__ import annotations

import argparse
import json
import sys

from .run import FIGURES, run_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller fixtures (1,000 runs / 100,000 events; "
                                                         "100-step runbook) and fewer repeats")
    ap.add_argument("--tiny", action="store_true", help="every figure once on tiny fixtures: checks the report's "
                                                        "shape (the test suite uses it); the numbers mean nothing")
    ap.add_argument("--fixture", help="folder that keeps the large state home between runs (default: a temp folder)")
    ap.add_argument("--only", help="comma-separated figure groups: " + ",".join(FIGURES))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    rows = run_all(size, fixture=args.fixture, only=only, progress=sys.stderr)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        print(table(rows))
    return 0 if all(r.ok is not False for r in rows) else 1


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "MB":
        return f"{v:.0f} MB"
    return f"{v:.3g}"


def table(rows: list) -> str:
    head = ("figure", "value", "baseline", "ratio", "goal", "ok")
    body = [(r.name, _fmt(r.value, r.unit), _fmt(r.baseline, r.unit) if r.baseline is not None else "-",
             f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.goal,
             "-" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
