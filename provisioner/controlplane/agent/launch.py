"""How a container spec becomes a process: argv, environment and working directory.

There are no container images here: the image name is recorded (status, Node images, image locality)
and the container's `command` + `args` run directly on the node. Like Docker with an image that has no
ENTRYPOINT, `args` alone are the command line. A container with neither runs a clearly labelled idle
placeholder (its log says so and the agent records a `NoCommand` Event), so that workloads written for
real images (`kubectl create deployment web --image=nginx`) still exercise the control plane.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PATH", "LaunchSpec", "launch_spec"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class LaunchSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    placeholder: bool  # no command was given: an idle stand-in runs instead
    problems: tuple[str, ...] = ()  # env sources that could not be resolved here


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` references; `$$` escapes, unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def _field(pod: Mapping[str, Any], path: str, *, address: str) -> str | None:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        section, key = path.split("['", 1)
        return (meta.get(section.split(".")[1]) or {}).get(key.rstrip("']"))
    return {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": address,
        "status.hostIP": address,
    }.get(path)


def launch_spec(pod: Mapping[str, Any], container: Mapping[str, Any], *, address: str) -> LaunchSpec:
    """The process for `container` of `pod` on a node whose (host-network) address is `address`."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": str(pod["metadata"]["name"])}
    problems: list[str] = []
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = _expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        value = _field(pod, source["fieldRef"]["fieldPath"], address=address) if "fieldRef" in source else None
        if value is None:
            problems.append(f"env {name}: {', '.join(source)} is not supported by this agent")
        else:
            env[name] = value
    command = [_expand(str(a), env) for a in container.get("command") or []]
    args = [_expand(str(a), env) for a in container.get("args") or []]
    argv = command + args
    placeholder = not argv
    if placeholder:
        note = (f"provisioner agent: image {container.get('image', '')!r} is recorded, not run, and the container "
                "has no command or args; idling in its place")
        argv = ["/bin/sh", "-c", 'echo "$0"; exec sleep infinity', note]
    return LaunchSpec(tuple(argv), env, container.get("workingDir") or None, placeholder, tuple(problems))
