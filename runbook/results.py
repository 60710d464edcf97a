"""How a step's work ended, as a value: the step loop passes results, not exceptions.

Each step kind (``items.run_task``, ``approvals.run_gate``, ``linked.run_child``,
``for_each.run_each``) returns a :class:`StepResult`; ``Runner.run_step`` decides from it
(``decide``) and returns the step's final result to the run. What stops the whole run
rather than a step stays an exception: a park (nobody to ask), an interruption, a fence,
a template without a value (``CheckFailed``: the step is left unfinished, to resume).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepResult:
    status: str = "succeeded"          # succeeded | failed | skipped
    reason: str = ""
    offer: bool = False                # a failure that offers STEP.on_fail (a gate, an action, a linked run)
    park: bool = False                 # with nobody to ask, park rather than fail (a refused approval)
    continued: bool = False            # failed under on_failure: continue (the run goes on)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def ends_run(self) -> bool:
        """A failure the run does not go on after."""
        return self.failed and not self.continued


OK = StepResult()


def failed(reason: str, offer: bool = False, park: bool = False) -> StepResult:
    return StepResult("failed", reason, offer, park)


def skipped(reason: str) -> StepResult:
    return StepResult("skipped", reason)
