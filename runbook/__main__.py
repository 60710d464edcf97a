"""``python -m runbook init [DIR]``: start a runbook project (see ``runbook.scaffold``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runbook",
        description="The runbook engine. Runbooks are run with invoke (`invoke runbook NAME`); this command "
                    "starts a project for them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser(
        "init", help="write a working runbook project into a folder",
        description="Write a working runbook project into DIR (default: the current folder): a thin tasks.py, "
                    "an example runbook and a local environment that run on this machine without any cloud, "
                    "an answers file, an empty checks/ for the project's own plugins, the JSON Schemas for "
                    "editors and a README with the two commands. Existing files are never overwritten: init "
                    "refuses (exit 2) and names them.")
    init.add_argument("dir", nargs="?", default=".", help="the project folder (created when missing)")
    args = parser.parse_args(argv)
    from .errors import RunbookError
    from .scaffold import init as do_init

    try:
        return do_init(Path(args.dir), sys.stdout)
    except RunbookError as exc:
        for line in exc.lines():
            sys.stderr.write(f"{line}\n")
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
