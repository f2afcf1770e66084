"""The plugin framework: extension-point protocols, result `Status`, the registry and a profile runner.

A plugin is a small class with a `name` and only the hooks it needs (`pre_filter`, `filter`,
`pre_score`, `score`, `normalize`). Ordering, short-circuiting and weights belong here, so adding
a plugin never touches the scheduling loop. Plugins register by name; a duplicate name fails at import.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = [
    "ALL_EVENTS",
    "MAX_NODE_SCORE",
    "PLUGINS",
    "SUCCESS",
    "ClusterEvent",
    "Code",
    "CycleState",
    "FilterPlugin",
    "FitError",
    "Framework",
    "NormalizePlugin",
    "PreFilterPlugin",
    "PreScorePlugin",
    "Profile",
    "ScorePlugin",
    "Status",
    "register",
    "reverse_normalize",
]

MAX_NODE_SCORE = 100


class ClusterEvent(enum.Enum):
    """Changes that can make a rejected pod fit; each filter plugin lists the ones that matter to it."""

    NODE_ADDED = "NodeAdd"
    NODE_CHANGED = "NodeUpdate"  # labels, taints, unschedulable, allocatable or images
    POD_ADDED = "AssignedPodAdd"
    POD_DELETED = "AssignedPodDelete"


ALL_EVENTS = frozenset(ClusterEvent)


class Code(enum.Enum):
    """What a hook's outcome means for the pod; each comment says what the queue does with it."""

    SUCCESS = "Success"  # go on with the next plugin / node
    UNSCHEDULABLE = "Unschedulable"  # this node cannot run it now; retried when the cluster changes
    UNRESOLVABLE = "UnschedulableAndUnresolvable"  # no change to other pods would help; retried on cluster events
    SKIP = "Skip"  # the plugin has nothing to say about this pod; its filter/score are not called
    ERROR = "Error"  # an internal fault: the pod goes to backoff


@dataclass(frozen=True, slots=True)
class Status:
    """A hook's result; `reasons` are written for `kubectl describe`, `plugin` names who said it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNRESOLVABLE)


SUCCESS = Status()


class CycleState:
    """Per-cycle scratch data; each plugin keeps its values under keys prefixed with its name."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def read(self, key: str) -> Any:
        return self._data[key]


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, pod: PodInfo, snapshot: Snapshot, state: CycleState) -> Status: ...


@runtime_checkable
class FilterPlugin(Protocol):
    name: str
    events: frozenset[ClusterEvent]  # what could make a node this plugin rejected acceptable

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo], state: CycleState) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int: ...


@runtime_checkable
class NormalizePlugin(Protocol):
    name: str

    def normalize(self, pod: PodInfo, scores: dict[str, int], state: CycleState) -> None: ...


PluginT = TypeVar("PluginT", bound=type)
PLUGINS: dict[str, Callable[[], object]] = {}


def register(cls: PluginT) -> PluginT:
    """Class decorator adding a plugin factory to `PLUGINS` under the class's `name`."""
    name = cls.name
    if name in PLUGINS:
        raise ValueError(f"scheduler plugin {name!r} registered twice")
    PLUGINS[name] = cls
    return cls


@dataclass(frozen=True)
class Profile:
    """Which plugins run, by name, in order; scores carry weights."""

    filters: tuple[str, ...]
    scores: tuple[tuple[str, int], ...]
    percentage_of_nodes_to_score: int = 0  # 0: Kubernetes' adaptive share (50% down to 5%); never under 100 nodes


class FitError(Exception):
    """No node fits: carries every node's rejecting Status, folded into Kubernetes' message."""

    def __init__(self, *, num_nodes: int, statuses: Mapping[str, Status], pre_filter: Status | None = None) -> None:
        self.num_nodes = num_nodes
        self.statuses = dict(statuses)
        self.pre_filter = pre_filter
        super().__init__(self.message)

    @property
    def plugins(self) -> frozenset[str]:
        """The plugins that rejected the pod somewhere."""
        statuses = [*self.statuses.values(), *([self.pre_filter] if self.pre_filter else [])]
        return frozenset(s.plugin for s in statuses)

    @property
    def message(self) -> str:
        """`0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {k: v}.`"""
        head = f"0/{self.num_nodes} nodes are available"
        if self.pre_filter is not None:
            return f"{head}: {', '.join(self.pre_filter.reasons)}."
        counts = Counter(reason for status in self.statuses.values() for reason in status.reasons)
        if not counts:
            return f"{head}."
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return f"{head}: {', '.join(f'{n} {reason}' for reason, n in ordered)}."


@dataclass
class Framework:
    """Runs one profile's plugins for one pod against one snapshot and returns the chosen node's name."""

    profile: Profile
    rng: random.Random = field(default_factory=random.Random)
    _next_start: int = 0

    def __post_init__(self) -> None:
        unknown = [n for n in (*self.profile.filters, *(n for n, _ in self.profile.scores)) if n not in PLUGINS]
        if unknown:
            raise ValueError(f"unknown scheduler plugins {unknown}; known: {sorted(PLUGINS)}")
        instances = {name: PLUGINS[name]() for name in {*self.profile.filters, *(n for n, _ in self.profile.scores)}}
        self._instances = instances
        self._pre_filters = [p for n in self.profile.filters if isinstance(p := instances[n], PreFilterPlugin)]
        self._filters = [p for n in self.profile.filters if isinstance(p := instances[n], FilterPlugin)]
        scored = [(instances[n], w) for n, w in self.profile.scores]
        self._pre_scores = [p for p, _ in scored if isinstance(p, PreScorePlugin)]
        self._scores: list[tuple[Any, int, Any]] = [  # (plugin, weight, its normalize or None), checked once here
            (p, w, p.normalize if isinstance(p, NormalizePlugin) else None)
            for p, w in scored
            if isinstance(p, ScorePlugin)
        ]

    def schedule(self, pod: PodInfo, snapshot: Snapshot) -> str:
        """The best node's name, or FitError when none fits."""
        if not snapshot.nodes:
            raise FitError(num_nodes=0, statuses={})
        state = CycleState()
        for plugin in self._pre_filters:
            status = plugin.pre_filter(pod, snapshot, state)
            if status.code is Code.SKIP:
                state.skip_filter.add(plugin.name)
            elif not status.ok:
                status = status if status.plugin else Status(status.code, status.reasons, plugin.name)
                raise FitError(num_nodes=len(snapshot.nodes), statuses={}, pre_filter=status)
        feasible, rejected = self._find_feasible(pod, snapshot, state)
        if not feasible:
            raise FitError(num_nodes=len(snapshot.nodes), statuses=rejected)
        if len(feasible) == 1:
            return feasible[0].name
        totals = self._score(pod, snapshot, feasible, state)
        best = max(totals.values())
        return self.rng.choice([name for name, total in totals.items() if total == best])

    def requeue_events(self, fit: FitError) -> frozenset[ClusterEvent]:
        """The cluster events after which a pod rejected this way is worth another cycle."""
        events = [getattr(self._instances.get(name), "events", ALL_EVENTS) for name in fit.plugins]
        return frozenset().union(*events) if events else ALL_EVENTS

    def _num_to_find(self, num_nodes: int) -> int:
        """Kubernetes' adaptive cut-off: big clusters stop filtering once enough nodes fit."""
        if num_nodes < 100:
            return num_nodes
        percentage = self.profile.percentage_of_nodes_to_score or max(5, 50 - num_nodes // 125)
        return max(100, num_nodes * percentage // 100)

    def _find_feasible(
        self, pod: PodInfo, snapshot: Snapshot, state: CycleState
    ) -> tuple[list[NodeInfo], dict[str, Status]]:
        filters = [p for p in self._filters if p.name not in state.skip_filter]
        nodes = snapshot.nodes
        wanted = self._num_to_find(len(nodes))
        feasible: list[NodeInfo] = []
        rejected: dict[str, Status] = {}
        start = self._next_start % len(nodes)
        visited = 0
        for offset in range(len(nodes)):
            node = nodes[(start + offset) % len(nodes)]
            visited += 1
            status = _first_rejection(filters, pod, node, state)
            if status is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            else:
                rejected[node.name] = status
        self._next_start = start + visited
        return feasible, rejected

    def _score(self, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo], state: CycleState) -> dict[str, int]:
        for plugin in self._pre_scores:
            if plugin.pre_score(pod, snapshot, nodes, state).code is Code.SKIP:
                state.skip_score.add(plugin.name)
        totals = dict.fromkeys((n.name for n in nodes), 0)
        for plugin, weight, normalize_scores in self._scores:
            if plugin.name in state.skip_score:
                continue
            score = plugin.score
            scores = {n.name: score(pod, n, state) for n in nodes}
            if normalize_scores is not None:
                normalize_scores(pod, scores, state)
            for name, value in scores.items():
                totals[name] += weight * value
        return totals


def _first_rejection(filters: Iterable[FilterPlugin], pod: PodInfo, node: NodeInfo, state: CycleState) -> Status | None:
    for plugin in filters:
        status = plugin.filter(pod, node, state)
        if status is not SUCCESS and status.code is not Code.SUCCESS:
            return status if status.plugin else Status(status.code, status.reasons, plugin.name)
    return None


def reverse_normalize(scores: dict[str, int]) -> None:
    """Map raw counts onto 0..100 with the highest count scoring 0 (fewer is better)."""
    highest = max(scores.values(), default=0)
    for name, value in scores.items():
        scores[name] = MAX_NODE_SCORE if highest == 0 else MAX_NODE_SCORE * (highest - value) // highest

