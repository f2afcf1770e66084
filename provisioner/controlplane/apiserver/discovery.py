"""Discovery documents (/version, /api, /apis, /api/v1, /apis/<group>/<version>), built from the resource table.

kubectl picks its own minor version from `/version` (the dispatcher at /usr/bin/kubectl bundles
1.27-1.33), and learns kinds, verbs, short names and scopes from the resource lists; the legacy
(non-aggregated) forms are enough for every client we serve.
"""

from __future__ import annotations

from typing import Any

from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType, group_versions

__all__ = ["SERVER_VERSION", "api_group_list", "api_resource_list", "api_versions", "version_info"]

SERVER_VERSION = (1, 31, 0)

_SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "log": ("get",),
}


def version_info() -> dict[str, Any]:
    major, minor, patch = SERVER_VERSION
    return {
        "major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.{patch}",
        "gitCommit": "provisioner", "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z",
        "goVersion": "go1.22.5", "compiler": "gc", "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for group, version in group_versions():
        if group:
            groups.setdefault(group, []).append(version)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
         "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]}}
        for g, versions in groups.items()]}


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                             "kind": rt.kind, "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _subresource_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                             "kind": rt.kind, "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",)))}
    if sub == "scale":
        entry.update(kind="Scale", group="autoscaling", version="v1")
    elif sub == "binding":
        entry["kind"] = "Binding"
    return entry


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The resources of one group/version, or None when it is not served."""
    served = [rt for rt in RESOURCES if (rt.group, rt.version) == (group, version)]
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for rt in served:
        resources.append(_resource_entry(rt))
        resources.extend(_subresource_entry(rt, sub) for sub in sorted(rt.subresources))
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
