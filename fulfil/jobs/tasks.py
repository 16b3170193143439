"""The task registry and the single rq entry point.

An rq job's payload is ``run(task, *ids)``: a registered name and ids. The handler is resolved from its dotted
path only when the job runs, so enqueueing imports nothing heavy and the payload stays a few bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

# The queues a default ``fulfil worker`` listens on, in priority order: planning is what ship-by waits on.
QUEUES: tuple[str, ...] = ("intake", "plan", "dispatch", "default")

# task name -> dotted path of its handler. Handlers take ids only, open their own session and are idempotent.
REGISTRY: dict[str, str] = {
    "close_due_batches": "fulfil.batching.close_due_batches_job",
    "plan_batch": "fulfil.planning.jobs.plan_batch",
    "plan_shard": "fulfil.planning.jobs.plan_shard",
    # intake (issue 3): normalise stored platform messages, pull increments, write tracking numbers back
    "normalise_inbox": "fulfil.intake.normalise.normalise_inbox",
    "pull_increments": "fulfil.intake.pulls.pull_increments",
    "confirm_shipment": "fulfil.intake.shipback.confirm_shipment",
    # dispatch (issue 5): waybills, pickup bookings, courier tracking scans
    "request_waybills": "fulfil.dispatch.waybills.request_waybills",
    "book_pickup": "fulfil.dispatch.pickups.book_pickup",
    "apply_tracking": "fulfil.dispatch.tracking.apply_tracking",
    "dispatch_due": "fulfil.dispatch.due.dispatch_due",
}

# task name -> queue; a task not listed goes to "default".
TASK_QUEUES: dict[str, str] = {
    "plan_batch": "plan",
    "plan_shard": "plan",
    "normalise_inbox": "intake",
    "pull_increments": "intake",
    "confirm_shipment": "intake",
    "request_waybills": "dispatch",
    "book_pickup": "dispatch",
    "apply_tracking": "dispatch",
    "dispatch_due": "dispatch",
}

# task name -> seconds a run may take before rq kills it; a solve is bounded by its own time limit first.
TIMEOUTS: dict[str, int] = {"plan_batch": 3600, "plan_shard": 3600}
DEFAULT_TIMEOUT = 600

# Entry point as rq stores it (a string, so the payload never pickles a function object).
ENTRY_POINT = "fulfil.jobs.tasks.run"


class UnknownTask(LookupError):
    def __init__(self, task: object) -> None:
        super().__init__(f"unknown task {task!r}; registered tasks: {', '.join(sorted(REGISTRY))}")
        self.task = task


def check(task: object) -> str:
    """``task`` if it is a registered name, else :class:`UnknownTask`."""
    if not isinstance(task, str) or task not in REGISTRY:
        raise UnknownTask(task)
    return task


def queue_for(task: str) -> str:
    return TASK_QUEUES.get(check(task), "default")


def timeout_for(task: str) -> int:
    return TIMEOUTS.get(check(task), DEFAULT_TIMEOUT)


def resolve(task: str) -> Callable[..., Any]:
    """The handler registered for ``task``, imported now."""
    path = REGISTRY[check(task)]
    module_name, _, attr = path.rpartition(".")
    try:
        handler = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"task {task!r}: handler {path} cannot be imported: {exc}") from exc
    if not callable(handler):
        raise TypeError(f"task {task!r}: {path} is not callable")
    return handler  # type: ignore[no-any-return]


def run(task: str, *ids: int | str) -> Any:
    """What every rq job calls: resolve ``task`` and run its handler on ``ids``."""
    return resolve(task)(*ids)
