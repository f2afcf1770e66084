"""Pod and Node dicts for scheduler tests, shaped as the API server returns them."""

from __future__ import annotations

from typing import Any

from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo


def make_pod(name: str = "p", *, namespace: str = "default", node: str = "", labels: dict[str, str] | None = None,
             cpu: str | None = None, memory: str | None = None, image: str = "busybox", owner: str = "",
             **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container = {"name": "c", "image": image, "resources": {"requests": requests}, **spec.pop("container", {})}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    return {"metadata": meta, "spec": {"containers": [container], "nodeName": node, **spec}}


def make_node(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
              unschedulable: bool = False, images: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                   "images": [{"names": [i], "sizeBytes": size} for i, size in (images or {}).items()]},
    }


def node_info(node: dict[str, Any], *pods: dict[str, Any]) -> NodeInfo:
    return NodeInfo.from_node(node, [PodInfo.from_pod(p) for p in pods])
