"""The Ray executor's nodes: which can run the suite (checked once, before any run is
sent), how many runs each takes at once, and which are drained.

A node is checked by one tiny task pinned to it: the suite loads from its source (its
plugins import), each device the runs ask for exists, and each dataset they train on
resolves (is built, as the preflight builds it; the cache keeps it for the runs). A node
that fails the check is named with its reason and gets no run. A node whose tasks fail
``DRAIN_AFTER`` times in a row outside the run (the task raised or its worker died,
rather than returning the run's record, failed or not) is drained: it gets no more runs,
and its failed runs are sent to another node.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ..errors import SegbenchError
from ..text import one_line

DRAIN_AFTER = 2  # task failures in a row outside the run that drain a node
NODES_PER_RUN = 2  # a run whose task failed on this many nodes fails: the run, not the node, is then the likely cause
HEALTH_TIMEOUT_S = 600.0  # for a node to import torch, load the plugins and build the datasets the first time
ID_SHOWN = 12  # characters of a Ray node id in messages (Ray's own tools show the full hex)


@dataclass(eq=False)
class Node:
    """A Ray node as the executor schedules on it."""

    id: str
    host: str
    slots: int  # runs at once: its CPUs (or GPUs) over what one run asks for
    running: int = 0
    failures_in_a_row: int = 0
    drained: bool = False

    @property
    def name(self) -> str:
        return f"Ray node {one_line(self.host)} (id {self.id[:ID_SHOWN]})"

    @property
    def free(self) -> bool:
        return not self.drained and self.running < self.slots


def nodes_for_runs(ray, resources: dict) -> list[Node]:
    """The alive nodes with room for at least one run asking ``resources`` (``num_cpus``
    or ``num_gpus``): a head started with ``--num-cpus 0`` is no candidate, not a bad node."""
    resource, amount = ("GPU", resources["num_gpus"]) if "num_gpus" in resources else ("CPU", resources["num_cpus"])
    nodes = []
    for entry in ray.nodes():
        slots = int(entry.get("Resources", {}).get(resource, 0) // amount)
        if entry.get("Alive") and slots > 0:
            nodes.append(Node(entry["NodeID"], entry.get("NodeManagerHostname") or entry.get("NodeManagerAddress") or "?", slots))
    if not nodes:
        raise SegbenchError(f"--executor ray: no alive Ray node has the {amount:g} {resource} one run asks for; nothing was "
                            "sent. Start the nodes with CPUs (ray start --num-cpus N) or GPUs for the runs")
    return nodes


def checked_nodes(ray, nodes, resources, source_ref, variant_ids, cache_dir, warn, timeout=HEALTH_TIMEOUT_S) -> list[Node]:
    """The ``nodes`` that pass :func:`node_problem`, each checked by one task pinned to it,
    all at once. Each bad node is named with its reason through ``warn``; none good is bad
    input (SegbenchError naming each node's reason), before any run is sent."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(node_problem)
    refs = {check.options(name="segbench node check", max_retries=0, **resources,
                          scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False))
            .remote(source_ref, variant_ids, cache_dir): node for node in nodes}
    answered, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    reasons = {refs[ref]: f"did not finish its check within {timeout:g} s (no free worker, or the check hung)" for ref in late}
    for ref in late:
        with contextlib.suppress(Exception):  # finished meanwhile, or its node is gone: nothing left to stop
            ray.cancel(ref, force=True)
    for ref in answered:
        try:
            problem = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the check's worker died, or Ray lost the node
            problem = f"its check task failed: {last_line(exc)}"
        if problem:
            reasons[refs[ref]] = problem
    for node, reason in reasons.items():
        warn(f"{node.name} is left out: {reason}")
    good = [node for node in nodes if node not in reasons]
    if not good:
        lines = "\n".join(f"  - {node.name}: {reason}" for node, reason in reasons.items())
        raise SegbenchError(f"--executor ray: no Ray node can run this suite, so nothing was sent:\n{lines}")
    return good


def node_problem(source: dict, variant_ids: list, cache_dir: str) -> str | None:
    """Why this node cannot run the runs of ``variant_ids``, in one line; None when it can.
    Runs as a Ray task on the node checked."""
    try:
        from ..engine import resolve_device
        from ..preflight import built_datasets
        from .task import find_run

        runs = [find_run(source, variant_id) for variant_id in variant_ids]  # the suite loads, its plugins import
        suite, variants = runs[0][0], [variant for _, variant in runs]
        for device in sorted({variant.config["train"]["device"] for variant in variants}):
            resolve_device(device)
        problem = _gpu_problem()
        if problem:
            return problem
        problems = built_datasets(suite, cache_dir, variants)[1]
    except Exception as exc:  # noqa: BLE001 - whatever stops the runs here is this node's reason
        return last_line(exc)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return one_line(problems[0]) + more
    return None


def _gpu_problem() -> str | None:
    """Ray gave this task a GPU that torch cannot use (a driver or CUDA build mismatch)."""
    import ray
    import torch

    gpus = ray.get_gpu_ids()
    if gpus and not torch.cuda.is_available():
        return f"Ray gave the check GPU {gpus[0]} but torch.cuda.is_available() is False (torch {torch.__version__})"
    return None


def last_line(exc: BaseException) -> str:
    """An exception's last line with its type (for a Ray error, its real cause), on one line."""
    from .ray import task_failure

    error = task_failure(exc) if _is_ray_error(exc) else {"type": type(exc).__name__, "message": str(exc)}
    message = error["message"].removeprefix("Ray could not finish the run: ")
    lines = [line for line in message.strip().splitlines() if line.strip()] or [""]
    return one_line(f"{error['type']}: {lines[-1].strip()}")


def _is_ray_error(exc) -> bool:
    return type(exc).__module__.startswith("ray")


class Dispatch:
    """Which node each run goes to: the least busy good node with a free slot that has not
    failed this run yet. Counts the failures outside the run per node, and drains."""

    def __init__(self, nodes: list[Node], warn):
        self.nodes, self.warn = nodes, warn

    def node_for(self, tried) -> Node | None:
        """A node with a free slot for a run already tried on ``tried`` nodes, or None."""
        free = [node for node in self.nodes if node.free and node not in tried]
        return min(free, key=lambda node: node.running / node.slots, default=None)

    def could_take(self, tried) -> bool:
        """Whether a node, free now or later, may still take a run tried on ``tried``."""
        return len(tried) < NODES_PER_RUN and any(not node.drained and node not in tried for node in self.nodes)

    def sent(self, node: Node):
        node.running += 1

    def returned(self, node: Node):
        """The node's task returned a record (the run's own, ok or failed): the node works."""
        node.running -= 1
        node.failures_in_a_row = 0

    def failed(self, node: Node, cause: str):
        """The node's task failed outside the run; drained at the ``DRAIN_AFTER``-th in a row."""
        node.running -= 1
        node.failures_in_a_row += 1
        if node.failures_in_a_row >= DRAIN_AFTER and not node.drained:
            node.drained = True
            self.warn(f"{node.name} is drained: {node.failures_in_a_row} runs in a row failed there outside the run "
                      f"(last: {cause}); its runs go to the other nodes")

    def none_left(self) -> str:
        return "no Ray node is left to run it: " + (", ".join(f"{node.name} drained" for node in self.nodes if node.drained)
                                                    or "every node tried failed it")
