"""The built-in plugins; importing this package registers each of them by name in `framework.PLUGINS`."""

from provisioner.controlplane.scheduler.plugins import (
    image_locality,
    inter_pod_affinity,
    node_affinity,
    node_ports,
    node_resources_balanced,
    node_resources_fit,
    node_resources_least_allocated,
    node_unschedulable,
    taint_toleration,
    workload_spread,
)

__all__ = [
    "image_locality",
    "inter_pod_affinity",
    "node_affinity",
    "node_ports",
    "node_resources_balanced",
    "node_resources_fit",
    "node_resources_least_allocated",
    "node_unschedulable",
    "taint_toleration",
    "workload_spread",
]
