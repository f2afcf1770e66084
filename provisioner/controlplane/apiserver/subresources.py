"""The subresources that are views or actions rather than parts of the object: scale, binding and log.

`scale` presents a Deployment or ReplicaSet as an autoscaling/v1 Scale; `binding` assigns a pod to
a node once; `log` is served by the node's agent, which the API server proxies to.
"""

from __future__ import annotations

import copy
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.apiserver.status import ApiError, FieldError, invalid

__all__ = ["AGENT_PORT", "KubeletClient", "bind_pod", "proxy_pod_log", "scale_of", "with_scale"]

Obj = dict[str, Any]
AGENT_PORT = 10250


def _selector_text(selector: Obj | None) -> str:
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def scale_of(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a Deployment or ReplicaSet."""
    meta = obj.get("metadata", {})
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0)),
                   "selector": _selector_text((obj.get("spec") or {}).get("selector"))},
    }


def with_scale(rt: ResourceType, obj: Obj, scale: Obj) -> Obj:
    """`obj` with the replicas (and resourceVersion precondition) a written Scale asks for."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(group="autoscaling", kind="Scale", name=obj["metadata"]["name"], errors=[
            FieldError("spec.replicas", f"must be a non-negative integer, got {replicas!r}")])
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv:
        new["metadata"]["resourceVersion"] = rv
    return new


def bind_pod(pod: Obj, binding: Obj) -> Obj:
    """`pod` assigned to the binding's target node; a pod is bound at most once."""
    name = pod["metadata"]["name"]
    target = binding.get("target") or {}
    node = target.get("name")
    if not node or target.get("kind", "Node") != "Node":
        raise invalid(group="", kind="Binding", name=name,
                      errors=[FieldError("target.name", "a node name is required", "FieldValueRequired")])
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": '
                                        f"pod {name} is already assigned to node \"{current}\"",
                       {"name": name, "kind": "pods"})
    if pod["metadata"].get("deletionTimestamp"):
        raise ApiError(409, "Conflict", f'pod "{name}" is being deleted, cannot be assigned to a node')
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = node
    return bound


def _node_ip(node: Obj) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in ("InternalIP", "ExternalIP"):
        for address in addresses:
            if address.get("type") == kind and address.get("address"):
                return str(address["address"])
    return ""


@dataclass(frozen=True)
class KubeletClient:
    """How the API server dials agents: trusting the cluster CA, and with its own client certificate,
    since agents only serve logs to clients the cluster CA vouches for."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.check_hostname = False  # agents' serving certificates name their node, not its address
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


async def proxy_pod_log(request: web.Request, *, pod: Obj, node: Obj | None, kubelet: KubeletClient
                        ) -> web.StreamResponse:
    """Stream `GET https://<node InternalIP>:10250/containerLogs/<ns>/<pod>/<container>` back to the client."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    name = meta["name"]
    node_name = spec.get("nodeName")
    if not node_name:
        raise ApiError(400, "BadRequest", f'pod "{name}" is not scheduled to a node yet, so it has no logs')
    containers = [c.get("name") for c in spec.get("containers") or []]
    container = request.query.get("container") or (containers[0] if len(containers) == 1 else "")
    if not container:
        raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                          f"choose one of: [{' '.join(containers)}]")
    if container not in containers + [c.get("name") for c in spec.get("initContainers") or []]:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    address = _node_ip(node) if node else ""
    if not address:
        raise ApiError(503, "ServiceUnavailable", f'node "{node_name}" of pod "{name}" has no InternalIP address; '
                                                  "its agent cannot be reached for logs")
    host = f"[{address}]" if ":" in address else address
    url = f"https://{host}:{AGENT_PORT}/containerLogs/{meta['namespace']}/{name}/{container}"
    query = {k: v for k, v in request.query.items() if k in ("follow", "tailLines", "timestamps", "sinceSeconds",
                                                              "limitBytes", "previous")}
    try:
        async with aiohttp.ClientSession() as session, session.get(url, params=query,
                                                                   ssl=kubelet.ssl_context()) as upstream:
            if upstream.status != 200:
                text = await upstream.text()
                reason = "NotFound" if upstream.status == 404 else "InternalError"
                raise ApiError(upstream.status, reason, f"agent on node {node_name}: {text.strip()}")
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientError as error:
        raise ApiError(503, "ServiceUnavailable",
                       f"cannot reach the agent of node {node_name} at {url}: {error}") from None
