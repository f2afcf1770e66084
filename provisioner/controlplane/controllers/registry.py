"""The table of control loops by name; `--controllers` picks entries from it, nothing else knows them."""

from __future__ import annotations

from collections.abc import Mapping

from provisioner.controlplane.controllers.base import Controller
from provisioner.controlplane.controllers.deployment import DeploymentController
from provisioner.controlplane.controllers.endpoints import EndpointsController
from provisioner.controlplane.controllers.garbagecollector import GarbageCollector
from provisioner.controlplane.controllers.namespace import NamespaceController
from provisioner.controlplane.controllers.nodelifecycle import NodeLifecycleController
from provisioner.controlplane.controllers.podgc import PodGCController
from provisioner.controlplane.controllers.replicaset import ReplicaSetController

__all__ = ["CONTROLLERS", "table"]


def table(*loops: type[Controller]) -> Mapping[str, type[Controller]]:
    """A registry from loop classes; a duplicate name is a programming error and fails at import."""
    registry: dict[str, type[Controller]] = {}
    for loop in loops:
        if loop.name in registry:
            raise ValueError(f"duplicate controller name {loop.name!r}")
        registry[loop.name] = loop
    return registry


CONTROLLERS = table(
    NodeLifecycleController,
    ReplicaSetController,
    DeploymentController,
    EndpointsController,
    NamespaceController,
    GarbageCollector,
    PodGCController,
)
