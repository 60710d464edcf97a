"""for_each: a step's members once per value as ``STEP[i]...`` (records, prompts and
templates of their own), serially or in threads, with ``max_failures``; an iteration's
``end:`` ends the run."""

from __future__ import annotations

import re
from typing import Any, Callable, Protocol

from . import results
from .errors import CheckFailed
from .results import StepResult
from .state import Event, StepStatus
from .steps import Step, each_id, iteration


_EACH_ROOT = re.compile(r"^(.*?\[\d+\])")      # STEP[i] of STEP[i].INNER.ITEM


class Ended(Exception):
    """A step with ``end:`` inside a for_each iteration succeeded: the run ends there."""

    def __init__(self, step: Step):
        super().__init__(step.id)
        self.step = step


class Host(Protocol):
    """What for_each needs of the run."""

    def emit(self, kind: Event, data: dict[str, Any], flush: bool = False) -> None: ...
    def finish_step(self, sid: str, status: StepStatus, **data: Any) -> None: ...
    iterations: dict[str, dict[str, Any]]
    parallel: int
    def resolve(self, value: Any, sid: str) -> Any: ...
    def run_step(self, step: Step) -> StepResult: ...
    @property
    def state(self) -> Any: ...


def each_of(runner: Host, key: str) -> dict[str, Any] | None:
    """The for_each iteration a step id or prompt id (``STEP[i]...``) belongs to, or None."""
    m = _EACH_ROOT.match(key) if "[" in key else None
    return runner.iterations.get(m.group(1)) if m else None


def each_mapping(each: dict[str, Any] | None) -> Callable[[str], str]:
    """Inside an iteration, ``${steps.STEP...}`` of its own for_each step means ``STEP[i]...``."""
    if each is None:
        return lambda sid: sid
    owner, here = each["of"], each_id(each["of"], each["of"], each["index"])
    return lambda sid: here + sid[len(owner):] if sid == owner or sid.startswith(owner + ".") else sid


def each_values(runner: Host, step: Step) -> list[Any] | StepResult:
    """A for_each step's values: those recorded at its first start (a resume never changes them),
    else resolved now and recorded."""
    known = runner.state.steps.get(step.id)
    if known is not None and known.values is not None:
        return known.values
    values = runner.resolve(step.data.get("for_each"), step.id)
    if not isinstance(values, list):
        return results.failed(f"for_each: {step.data.get('for_each')!r} resolved to {values!r}, not a list")
    runner.emit(Event.EACH_VALUES, {"step": step.id, "values": values}, flush=True)
    return values


def run_each(runner: Host, step: Step, deadline: float | None = None) -> StepResult:
    """A for_each step: its members (the step, or its include's steps) once per value, as
    ``STEP[i]...`` with their own records and prompts; at most ``concurrency`` at once (in
    threads; prompts one at a time). Iterations already done are never repeated. After more
    than ``max_failures`` failed, no more start and the step fails; failures within it are
    deviations and the step succeeds."""
    values = each_values(runner, step)
    if isinstance(values, StepResult):
        return values
    limit = int(step.data.get("max_failures") or 0)
    concurrency = max(1, int(step.data.get("concurrency") or 1))
    failed: dict[int, tuple[str, str]] = {}      # index -> (iteration step id, why)
    ended: list[Step] = []                       # an iteration's step with ``end:`` that succeeded

    def one(index: int) -> None:
        runner.iterations[each_id(step.id, step.id, index)] = {"of": step.id, "index": index, "value": values[index]}
        for member in step.members:
            it = iteration(member, index, values[index])
            try:
                result = runner.run_step(it)     # a finished iteration's step is kept, never repeated
            except CheckFailed as exc:
                failed[index] = (it.id, str(exc))
                return
            if result.ends_run:
                failed[index] = (it.id, result.reason)
                return
            if it.end and runner.state.steps[it.id].status is StepStatus.SUCCEEDED:
                ended.append(it)     # `end:` ends the run, as it does outside a for_each
                return

    def stop() -> bool:
        return len(failed) > limit or bool(ended)

    todo = [i for i in range(len(values))
            if not all(runner.state.finished(each_id(step.id, m.id, i)) for m in step.members)
            or any(m.end for m in step.members)]
    if concurrency == 1:
        for index in todo:
            if stop():
                break
            one(index)
    else:
        each_in_threads(runner, todo, one, concurrency, stop)
    if len(failed) > limit:
        return results.failed(f"{len(failed)} iteration(s) failed, more than max_failures {limit}: " + "; ".join(
            f"{sid} ({values[i]}): {why}" for i, (sid, why) in sorted(failed.items())), offer=True)
    if ended:
        raise Ended(ended[0])
    succeeded = [i for i in range(len(values)) if i not in failed and not any(
        runner.state.steps.get(each_id(step.id, m.id, i)) is not None
        and runner.state.steps[each_id(step.id, m.id, i)].status is StepStatus.FAILED for m in step.members)]
    if failed and not succeeded:
        return results.failed(f"every iteration failed ({len(failed)} of {len(values)}; max_failures {limit} "
                              "allows failures beside successes, not instead of them): " + "; ".join(
                                  f"{sid} ({values[i]}): {why}" for i, (sid, why) in sorted(failed.items())),
                              offer=True)
    for index, (sid, why) in sorted(failed.items()):
        runner.finish_step(sid, StepStatus.FAILED, reason=f"{why} (within max_failures {limit})", continued=True,
                           each_failed=True)
    return results.OK


def each_in_threads(runner: Host, todo: list[int], one: Callable[[int], None], concurrency: int,
                    stop: Callable[[], bool]) -> None:
    """Run ``one`` over ``todo`` in at most ``concurrency`` threads; none starts once ``stop()``
    says so or one raised (that error is raised once the running ones have ended)."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    error: BaseException | None = None
    queue = list(todo)
    runner.parallel += 1
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="for_each") as pool:
            running: set[Future[None]] = set()
            while queue or running:
                while queue and len(running) < concurrency and error is None and not stop():
                    running.add(pool.submit(one, queue.pop(0)))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is not None and error is None:
                        error = future.exception()
    finally:
        runner.parallel -= 1
    if error is not None:
        raise error
