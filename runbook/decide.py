"""What next, as data: the step loop's decisions, pure.

The Runner gathers facts (what the journal says of a run, a step or an item, what a probe
found, whether the step's verify checks pass, what the operator answered) and asks here
what to do next; it never decides itself. Each function maps facts to the next action;
while a fact is missing the answer is the action that finds it out (``probe``,
``verify``, ``ask``), and the Runner loops until the answer is final. The rules are
DESIGN's "Resume"; the tables in ``tests/scenarios/decide/`` check every one, row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class RunNext(str, Enum):
    STEPS = "steps"                      # run every unfinished step, in order
    RESUME_LINKED = "resume-linked"      # finish the accepted on_failure run; the failed step is never re-run


def run_next(offer_accepted: bool, has_on_failure: bool) -> RunNext:
    """A run (started or resumed): its steps, unless its on_failure runbook was accepted."""
    return RunNext.RESUME_LINKED if offer_accepted and has_on_failure else RunNext.STEPS


class ResumeNext(str, Enum):
    RESUME = "resume"                    # go on where the run stopped
    RESUME_FORCED = "resume-forced"      # the plan changed; resumed with the operator's recorded reason
    ASK_REASON = "ask-reason"            # the plan changed: ask for a reason (run.force)
    REFUSE_OVER = "refuse-over"          # succeeded, rolled-back, abandoned, ended: nothing to resume
    REFUSE_CHANGED = "refuse-changed"    # the plan changed and no reason was given


def resume_next(over: bool, plan_changed: bool, reason: str | None = None) -> ResumeNext:
    """``--resume``: a run that is over is never resumed; one whose resolved plan changed (runbook,
    includes, environment, plugin versions: one digest) resumes only with a recorded reason."""
    if over:
        return ResumeNext.REFUSE_OVER
    if not plan_changed:
        return ResumeNext.RESUME
    if reason is None:
        return ResumeNext.ASK_REASON
    return ResumeNext.RESUME_FORCED if reason.strip() else ResumeNext.REFUSE_CHANGED


class StepNext(str, Enum):
    KEEP = "keep"      # finished (succeeded, skipped by its condition or a decision, failed and continued)
    SKIP = "skip"      # its when/unless says so
    RUN = "run"        # run it (again): requires checked, gate and confirm asked, actions as item_next says


def step_next(finished: bool, condition_skips: bool) -> StepNext:
    """A step that finished is never repeated; one that did not starts again, whatever stopped it."""
    if finished:
        return StepNext.KEEP
    return StepNext.SKIP if condition_skips else StepNext.RUN


class ItemNext(str, Enum):
    KEEP = "keep"                            # done: its outputs come from the journal
    RUN = "run"                              # call it (a check, an action, an action again)
    PROBE = "probe"                          # find out whether the interrupted action's effect exists
    VERIFY = "verify"                        # run the step's verify checks to find out
    ASK = "ask"                              # ask the operator (STEP.ITEM.on_fail)
    RECOVERED_BY_PROBE = "recovered-by-probe"
    RECOVERED_BY_VERIFY = "recovered-by-verify"
    SKIPPED = "skipped"                      # the operator looked and skipped it (a deviation, recorded)
    ABORT = "abort"                          # the operator aborted: the step fails
    PARK = "park"                            # nobody to ask: the run parks (exit 4)


@dataclass(frozen=True)
class ItemFacts:
    """What is known of one item when its step runs (again). ``None``: not found out yet."""

    done: bool = False                  # a result that passed, or a recorded skip
    action: bool = False                # an action (else a check)
    interrupted: bool = False           # an intent record without a result
    probe: str = ""                     # "author" (its probe:), "plugin" (the plugin's), "" none
    probe_found: str | None = None      # "present", "absent", "unknown" (the probe could not look)
    verify: bool = False                # the step has automated verify checks
    verify_passed: bool | None = None
    side_effect: bool = True            # the plugin declares a side effect
    answer: str | None = None           # the operator: "retry", "skip", "abort", or "nobody" to ask


def journal_facts(state: Any, sid: str, key: str) -> dict[str, bool]:
    """What the folded journal says of item ``key`` of step ``sid``: ``done`` (a result that
    passed, or a recorded skip) and ``interrupted`` (an intent without a result). On a step's
    restart the fold has already forgotten what is not kept (checks, gates, failed actions)."""
    step = state.steps.get(sid)
    item = step.items.get(key) if step is not None else None
    return {"done": bool(item is not None and item.done),
            "interrupted": bool(item is not None and item.intent is not None and item.result is None)}


_ANSWERED = {"retry": ItemNext.RUN, "skip": ItemNext.SKIPPED, "abort": ItemNext.ABORT, "nobody": ItemNext.PARK}


def item_next(f: ItemFacts) -> ItemNext:
    """An action that succeeded is never repeated; one interrupted after its intent is probed
    (when it has a probe); else the step's verify checks decide: all passing means done;
    failing means an action without a side effect repeats, and any other asks the operator
    (nobody to ask: park). An action that failed, and every check, runs again."""
    if f.done:
        return ItemNext.KEEP
    if not (f.action and f.interrupted):
        return ItemNext.RUN
    if f.probe and f.probe_found is None:
        return ItemNext.PROBE
    if f.probe_found == "present":
        return ItemNext.RECOVERED_BY_PROBE
    if f.probe_found == "absent":
        return ItemNext.RUN
    if f.verify and f.verify_passed is None:     # no probe, or it could not look
        return ItemNext.VERIFY
    if f.verify_passed:
        return ItemNext.RECOVERED_BY_VERIFY
    if not f.side_effect:
        return ItemNext.RUN
    if f.answer is None:
        return ItemNext.ASK
    return _ANSWERED[f.answer]


class FailNext(str, Enum):
    RETRY = "retry"      # the step starts again (its checks, gate and confirm forgotten)
    SKIP = "skip"        # the step is skipped with the typed reason: a deviation
    ABORT = "abort"      # the step fails, and with it the run
    PARK = "park"        # nobody to ask and the failure needs a person (a refused approval): exit 4


@dataclass(frozen=True)
class FailFacts:
    """A failed gate, action or linked run, and the answer to ``STEP.on_fail`` (when asked)."""

    offer: bool = True                  # the failure offers STEP.on_fail (else it fails the step)
    needs_person: bool = False          # with nobody to ask, park rather than fail
    answer: str | None = None           # "retry", "skip", "abort", "nobody"
    retries_left: bool = True           # an answers file's retries are bounded; a person's are not
    reason: str = ""                    # the typed reason of a skip
    gate_on_protected: bool = False     # an approval gate on a protected environment is never skipped


def on_fail_next(f: FailFacts) -> FailNext | None:
    """``STEP.on_fail``: retry, skip with a typed reason, or abort; None: ask first."""
    if not f.offer:
        return FailNext.ABORT
    if f.answer is None:
        return None
    if f.answer == "nobody":
        return FailNext.PARK if f.needs_person else FailNext.ABORT
    if f.answer == "retry":
        return FailNext.RETRY if f.retries_left else FailNext.ABORT
    if f.answer == "skip":
        return FailNext.SKIP if f.reason.strip() and not f.gate_on_protected else FailNext.ABORT
    return FailNext.ABORT
