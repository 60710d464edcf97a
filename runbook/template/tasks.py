"""invoke entry point: the runbook engine's tasks (runbook.*, audit.*, backend.*) for this project."""

import sys
from pathlib import Path

sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)   # let the engine's modules be compiled once

from runbook.tasks import namespace  # noqa: E402

ns = namespace(Path(__file__).resolve().parent)
