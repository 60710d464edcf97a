"""AWS on loopback: a moto server plus an ECS rollout simulation layer.

moto alone keeps one deployment per service forever, with ``runningCount`` 0 and
``rolloutState`` IN_PROGRESS, and ``update_service`` changes the service's task
definition without starting a deployment (FACTS.md); and moto applies concurrent requests
with no lock, so two conditional writes to one item can both succeed. :class:`AwsStandIn`
runs moto's server in this process, one request at a time (:class:`MotoServer`), and a
background thread that watches moto's ECS backend and drives each service the way ECS's
rolling-update scheduler (minimum healthy 100 %, maximum 200 %) would show it through
``describe_services``:

* A service seen for the first time is adopted as steady: its one PRIMARY deployment
  runs ``desiredCount`` tasks, ``rolloutState`` COMPLETED. (It was "already running".)
* When the service's task definition differs from its PRIMARY deployment's, or moto
  renewed the PRIMARY's id (``forceNewDeployment``), a rollout starts: a new PRIMARY
  (new task definition, 0 running, IN_PROGRESS) and the old deployments as ACTIVE,
  still running their tasks. The service's ``taskDefinition`` is normalised to the full
  ARN, as AWS shows it.
* Every *move* (one tick for ``healthy``, ``slow_ticks`` ticks for ``slow``) advances the
  rollout one stage: start the new tasks (pending), bring one pending task to running,
  then stop the ACTIVE deployments' tasks, drop them, and mark the PRIMARY COMPLETED
  with the events ECS writes ("has started 3 tasks", "has stopped 3 running tasks",
  "deployment completed", "has reached a steady state").
* ``failing``: each move one new task fails (``failedTasks`` grows, "failed container
  health checks" events) and is replaced. When ``failedTasks`` reaches the deployment
  circuit breaker's threshold (half the desired count, at least 3, at most 200), the
  deployment becomes FAILED ("tasks failed to start") and the circuit breaker *rolls
  back*, as ECS does with ``deploymentCircuitBreaker {enable: true, rollback: true}``:
  the service's task definition returns to the last COMPLETED one and a healthy rollback
  deployment replaces the failed one. The service ends stable, on the old revision.
* ``stuck``: like ``failing`` but without a circuit breaker: tasks keep failing, the
  rollout stays IN_PROGRESS forever and the old tasks keep serving (what an operator
  rolls back by hand).
* Scaling (``desiredCount`` changed, no new deployment) moves the PRIMARY's counts.

The scenario of a rollout is decided when it starts, from (first match): a scenario set
for its task definition (``set_scenario(s, task_definition="family:rev")``), the task
definition's tag ``runbook-sandbox:scenario``, a scenario set for the service, the
service's tag, the default. Tags make the scenario controllable from another process
with plain boto3 (the sandbox's ``--scenario bad-release``). Rollback deployments of
the circuit breaker are always healthy.

The MenoTime production world over it (seeding, metrics, logs) is ``runbook.standins.menotime``;
the moto server itself, ``runbook.standins.moto_server``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import clock
from .moto_server import SERVING, MotoServer

SCENARIOS = ("healthy", "slow", "failing", "stuck")
SCENARIO_TAG = "runbook-sandbox:scenario"
DEFAULT_ACCOUNT = "123456789012"
MAX_EVENTS = 100

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return clock.now()


def task_id() -> str:
    return secrets.token_hex(16)


def _deployment_id() -> str:
    return f"ecs-svc/{secrets.randbelow(10 ** 19):019d}"


def breaker_threshold(desired: int) -> int:
    """ECS's deployment circuit breaker: half the desired count, at least 3, at most 200."""
    return max(3, min(200, math.ceil(desired / 2)))


@dataclass
class _Rollout:
    scenario: str
    deployment: dict[str, Any]             # the new PRIMARY
    active: list[dict[str, Any]]           # the old deployments, still running their tasks
    previous_td: str                       # the last COMPLETED task definition (circuit breaker target)
    wait: int = 0                          # ticks until the next move
    stage: str = "launch"                  # launch -> start -> drain -> done


@dataclass
class _ServiceSim:
    task_definition: str
    deployment_id: str
    rollout: _Rollout | None = None


@dataclass
class AwsStandIn:
    """A moto server on 127.0.0.1 with the ECS rollout simulation running beside it.

    ``tick`` is the seconds between simulation steps (None: no thread; call :meth:`step`).
    """

    scenario: str = "healthy"
    tick: float | None = 0.1
    slow_ticks: int = 8
    port: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_scenario(self.scenario)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._sims: dict[str, _ServiceSim] = {}
        self._by_service: dict[str, str] = {}
        self._by_td: dict[str, str] = {}
        self.endpoint_url = ""

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "AwsStandIn":
        """Start the moto server and the simulation thread; returns self."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = MotoServer(port=self.port, owner=self)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        _install_hooks()
        _ACTIVE.append(self)
        if self.tick is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ecs-rollout-sim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the simulation thread and the server."""
        self._stop.set()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "AwsStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every AWS resource (moto's reset) and every simulated rollout; default scenario back."""
        # the request outside self._lock: a create/update_service request holds the server's request lock
        # and then takes self._lock (changed()), so holding them the other way round could deadlock
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):  # nosec B310 - our own loopback server
            pass
        with self._lock:
            self._sims.clear()
            self._by_service.clear()
            self._by_td.clear()
            self.errors.clear()

    # -- scenario control ---------------------------------------------------------------
    def set_scenario(self, scenario: str, service: str | None = None, task_definition: str | None = None) -> None:
        """Set the scenario of future rollouts: default, per service (name) or per task definition."""
        _check_scenario(scenario)
        with self._lock:
            if task_definition:
                self._by_td[task_definition.rsplit("/", 1)[-1]] = scenario
            elif service:
                self._by_service[service] = scenario
            else:
                self.scenario = scenario

    def deployments(self, cluster: str, service: str, account: str = DEFAULT_ACCOUNT,
                    region: str = "us-west-1") -> list[dict[str, Any]]:
        """The service's deployments as describe_services shows them (for the sandbox's app)."""
        backend = _ecs_backend(account, region)
        svc = backend.services.get(f"{cluster}:{service}") if backend else None
        return [dict(d) for d in svc.deployments] if svc else []

    # -- the simulation -----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.tick or 0.1):
            self.step()

    def step(self) -> None:
        """Advance every service of every account and region by one tick."""
        from moto.backends import get_backend

        with self._lock:
            backends = get_backend("ecs")
            for account in list(backends.keys()):
                for region, backend in list(backends[account].items()):
                    for svc in list(backend.services.values()):
                        try:
                            self._step_service(backend, svc)
                        except Exception as exc:  # moto's internals are foreign: keep simulating the others
                            message = f"{svc.cluster_name}/{svc.name}: {type(exc).__name__}: {exc}"
                            if message not in self.errors:
                                self.errors.append(message)
                                log.warning("ECS simulation: %s", message)

    def changed(self, backend: Any, svc: Any) -> None:
        """Called right after moto creates or updates a service: show the new deployment at once,
        as ECS does, so a waiter called straight after ``update_service`` sees the rollout."""
        with self._lock:
            self._step_service(backend, svc, advance=False)

    def _step_service(self, backend: Any, svc: Any, advance: bool = True) -> None:
        if svc.status != "ACTIVE" or not svc.deployments:
            return   # deleted, or not an ECS-controlled service (CODE_DEPLOY, EXTERNAL)
        if svc.task_definition and not svc.task_definition.startswith("arn:"):
            svc.task_definition = backend.describe_task_definition(svc.task_definition).arn
        primary = svc.deployments[0]
        key = svc.arn
        sim = self._sims.get(key)
        if sim is None:   # adopt as steady; a change made before this first look still rolls out
            self._sims[key] = sim = _ServiceSim(primary["taskDefinition"], primary["id"])
            self._settle(svc, primary)
        if svc.task_definition != sim.task_definition or primary["id"] != sim.deployment_id:
            self._begin(backend, svc, sim)
        if sim.rollout is None:
            self._scale(svc, sim)
        elif advance:
            rollout = sim.rollout
            if rollout.wait > 0:
                rollout.wait -= 1
            else:
                rollout.wait = self.slow_ticks - 1 if rollout.scenario == "slow" else 0
                self._move(backend, svc, sim, rollout)
        self._publish(svc, sim)

    def _settle(self, svc: Any, primary: dict[str, Any]) -> None:
        desired = svc.desired_count
        now = _now()
        deployment = dict(primary, desiredCount=desired, runningCount=desired,
                          pendingCount=0, failedTasks=0, rolloutState="COMPLETED",
                          rolloutStateReason=f"ECS deployment {primary['id']} completed.", updatedAt=now)
        svc.deployments = [deployment]
        svc.running_count, svc.pending_count = desired, 0
        _event(svc, "has reached a steady state.")

    def _begin(self, backend: Any, svc: Any, sim: _ServiceSim, scenario: str | None = None) -> _Rollout:
        now = _now()
        new = {"id": _deployment_id(), "status": "PRIMARY", "taskDefinition": svc.task_definition,
               "desiredCount": svc.desired_count, "pendingCount": 0, "runningCount": 0, "failedTasks": 0,
               "createdAt": now, "updatedAt": now, "launchType": svc.launch_type or "FARGATE",
               "platformFamily": "EC2" if svc.launch_type == "EC2" else "FARGATE",
               "rolloutState": "IN_PROGRESS", "rolloutStateReason": "ECS deployment in progress."}
        new["rolloutStateReason"] = f"ECS deployment {new['id']} in progress."
        active = [dict(d, status="ACTIVE") for d in svc.deployments]
        previous = sim.rollout.previous_td if sim.rollout else sim.task_definition
        if scenario is None:
            scenario = self._scenario_for(backend, svc)
        sim.rollout = _Rollout(scenario, new, active, previous)
        sim.task_definition, sim.deployment_id = svc.task_definition, new["id"]
        return sim.rollout

    def _scenario_for(self, backend: Any, svc: Any) -> str:
        family_revision = svc.task_definition.rsplit("/", 1)[-1]
        if family_revision in self._by_td:
            return self._by_td[family_revision]
        tagged = _tag(backend.describe_task_definition(svc.task_definition).tags)
        for found in (tagged, self._by_service.get(svc.name, ""),
                      self._by_service.get(f"{svc.cluster_name}/{svc.name}", ""), _tag(svc.tags)):
            if found in SCENARIOS:
                return found
        return self.scenario

    def _move(self, backend: Any, svc: Any, sim: _ServiceSim, rollout: _Rollout) -> None:
        new, desired = rollout.deployment, svc.desired_count
        new["desiredCount"] = desired
        new["updatedAt"] = _now()
        fails = rollout.scenario in ("failing", "stuck")
        if rollout.stage == "launch":
            count = max(0, desired - new["runningCount"] - new["pendingCount"])
            if count:
                new["pendingCount"] += count
                _event(svc, f"has started {count} tasks: {_tasks(count)}.")
            rollout.stage = "start"
        elif rollout.stage == "start" and fails:
            if new["pendingCount"]:
                task = task_id()
                new["failedTasks"] += 1
                _event(svc, f"has stopped 1 running tasks: (task {task}). Reason: Task failed container health "
                            "checks.")
                _event(svc, f"has started 1 tasks: {_tasks(1)}.")
            if rollout.scenario == "failing" and new["failedTasks"] >= breaker_threshold(desired):
                self._circuit_breaker(backend, svc, sim, rollout)
        elif rollout.stage == "start":
            if new["pendingCount"]:
                new["pendingCount"] -= 1
                new["runningCount"] += 1
            if new["runningCount"] >= desired and not new["pendingCount"]:
                rollout.stage = "drain"
        elif rollout.stage == "drain":
            stopping = sum(d["runningCount"] for d in rollout.active)
            if stopping:
                _event(svc, f"has stopped {stopping} running tasks: {_tasks(min(stopping, 10))}.")
            rollout.active = [dict(d, runningCount=0, pendingCount=0) for d in rollout.active]
            rollout.stage = "done"
        else:
            rollout.active = []
            new["rolloutState"] = "COMPLETED"
            new["rolloutStateReason"] = f"ECS deployment {new['id']} completed."
            _event(svc, f"(deployment {new['id']}) deployment completed.")
            _event(svc, "has reached a steady state.")
            svc.deployments = [dict(new)]
            sim.rollout = None

    def _circuit_breaker(self, backend: Any, svc: Any, sim: _ServiceSim, rollout: _Rollout) -> None:
        failed = dict(rollout.deployment, rolloutState="FAILED", pendingCount=0, runningCount=0,
                      rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.")
        _event(svc, f"(deployment {failed['id']}) deployment failed: tasks failed to start.")
        svc.task_definition = rollout.previous_td
        svc.deployments = [failed] + rollout.active
        back = self._begin(backend, svc, sim, scenario="healthy")
        back.previous_td = rollout.previous_td
        _event(svc, f"rolling back to deployment {back.deployment['id']}.")

    def _scale(self, svc: Any, sim: _ServiceSim) -> None:
        primary = dict(svc.deployments[0])
        desired, running = svc.desired_count, primary["runningCount"]
        if primary.get("rolloutState") == "IN_PROGRESS" and running == desired:
            primary["rolloutState"] = "COMPLETED"
        if running != desired:
            if desired > running:
                _event(svc, f"has started {desired - running} tasks: {_tasks(min(desired - running, 10))}.")
            else:
                _event(svc, f"has stopped {running - desired} running tasks: {_tasks(min(running - desired, 10))}.")
            _event(svc, "has reached a steady state.")
        primary.update(desiredCount=desired, runningCount=desired, pendingCount=0)
        svc.deployments = [primary]

    def _publish(self, svc: Any, sim: _ServiceSim) -> None:
        rollout = sim.rollout
        if rollout is None:
            deployments = [dict(svc.deployments[0])]
        else:
            deployments = [dict(rollout.deployment)] + [dict(d) for d in rollout.active]
            sim.deployment_id = rollout.deployment["id"]
        svc.deployments = deployments
        svc.running_count = sum(d["runningCount"] for d in deployments)
        svc.pending_count = sum(d["pendingCount"] for d in deployments)


_ACTIVE: list[AwsStandIn] = []
_HOOKED: list[bool] = []


def _install_hooks() -> None:
    """Wrap moto's ECS backend: ``create_service``/``update_service`` notify the running
    stand-ins; task definitions get the ``registeredAt``/``deregisteredAt`` moto leaves out."""
    if _HOOKED:
        return
    from moto.ecs.models import EC2ContainerServiceBackend as Backend

    def notify(backend: Any, svc: Any) -> None:
        owner = getattr(SERVING, "owner", None)
        for standin in ([owner] if owner is not None else list(_ACTIVE)):
            if standin in _ACTIVE:
                standin.changed(backend, svc)

    def stamp(attribute: str) -> Any:
        def after(backend: Any, td: Any) -> None:
            if getattr(td, attribute, None) is None:
                setattr(td, attribute, _now())
        return after

    for name, after in (("create_service", notify), ("update_service", notify),
                        ("register_task_definition", stamp("registered_at")),
                        ("deregister_task_definition", stamp("deregistered_at"))):
        setattr(Backend, name, _wrapped(getattr(Backend, name), after))
    _HOOKED.append(True)


def _wrapped(original: Any, after: Any) -> Any:
    def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        after(self, result)
        return result
    hooked.__wrapped__ = original  # type: ignore[attr-defined]
    return hooked


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown ECS scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


def _tag(tags: Iterable[dict[str, str]] | None) -> str:
    for tag in tags or []:
        if tag.get("key") == SCENARIO_TAG:
            return tag.get("value", "")
    return ""


def _tasks(count: int) -> str:
    return " ".join(f"(task {task_id()})" for _ in range(count))


def _event(svc: Any, text: str) -> None:
    """Prepend a service event, newest first, as ECS shows them."""
    event = {"id": secrets.token_hex(18), "createdAt": _now(), "message": f"(service {svc.name}) {text}"}
    svc.events = [event] + list(svc.events)[: MAX_EVENTS - 1]


def _ecs_backend(account: str, region: str) -> Any:
    from moto.backends import get_backend

    backends = get_backend("ecs")
    if account not in backends.keys() or region not in backends[account].keys():
        return None
    return backends[account][region]
