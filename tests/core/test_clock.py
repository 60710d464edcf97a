"""Time as one seam (runbook/clock.py): the poll loop's rule, and the engine on a virtual clock,
where a wait of minutes passes without minutes of wall time (these tests prove logic, not timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.harness import of_type, world
from runbook import clock
from runbook.errors import ExitCode


def test_wait_until_tries_while_another_try_fits_in_the_timeout() -> None:
    with clock.installed(clock.VirtualClock()) as virtual:
        seen: list[float] = []
        assert clock.wait_until(lambda: seen.append(clock.monotonic()), 20, 5) is None
        assert seen == [0, 5, 10, 15, 20]                       # a try at 0 and every 5 s while one fits
        assert virtual.monotonic() == 20
        ticks: list[float] = []
        assert clock.wait_until(lambda: clock.monotonic() >= 27, None, 3, on_tick=ticks.append) is True
        assert ticks == [0, 3, 6]                                 # no timeout: until it holds
        assert clock.wait_until(lambda: "x", 0, 1) == "x"        # a true value ends it at once, even at 0 s


def test_the_engine_waits_ten_minutes_of_virtual_time_at_once(tmp_path: Path) -> None:
    w = world(tmp_path)
    (w.root / "runbooks" / "slow-wait.yaml").write_text("""\
name: slow-wait
title: A wait of ten minutes that passes on the fourth look
params:
  dir: {type: string}
steps:
  - id: queue
    title: Wait for the queue to drain
    verify:
      - id: drained
        uses: shell.check
        with: {argv: [python3, -c, "import sys\\np = sys.argv[1] + '/calls'\\nopen(p, 'a').write('x')\\nsys.exit(0 if len(open(p).read()) >= 4 else 1)", "${params.dir}"]}
        wait: {timeout: 600, interval: 60}
""")
    with clock.installed(clock.VirtualClock()) as virtual:
        assert w.run("slow-wait") == ExitCode.OK
        assert virtual.monotonic() == pytest.approx(180)          # three intervals of 60 s waited, virtually
    [result] = of_type(w.records(), "item.result", item="drained")
    assert result["data"]["passed"] and len((w.work / "calls").read_text()) == 4
