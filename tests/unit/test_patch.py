"""Patches and server-side apply.

The strategic-merge cases were cross-checked against kubectl's own implementation of the algorithm
(`kubectl patch --local -f OBJECT --type strategic -p PATCH -o json`, kubectl 1.3x, no server involved);
their patches are the shapes kubectl sends for `set image`, `rollout restart`, `label`, `annotate`, `scale`
and `apply` of a changed manifest (`$setElementOrder`, `$patch: delete`, `$retainKeys`).
"""

import copy
import json
from typing import Any

import pytest

from provisioner.controlplane.apiserver.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    patch_strategy,
    server_side_apply,
)
from provisioner.controlplane.apiserver.status import ApiError

DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        "finalizers": ["example.com/a", "example.com/b"],
    },
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                    },
                    {"name": "sidecar", "image": "busybox:1.36"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "nodeSelector": {"disk": "ssd"},
            },
        },
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
        ],
    },
}
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n1"},
    "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AgentReady"},
            {"type": "MemoryPressure", "status": "False"},
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}],
    },
}
CM = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "c",
        "namespace": "default",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "q", "uid": "u0"}],
    },
    "data": {"a": "1", "b": "2"},
}

ABSENT = object()
WEB, SIDECAR = DEPLOY["spec"]["template"]["spec"]["containers"]


def podspec(patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": patch}}}


def _changed(original: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`original` with each dotted path (list indices as numbers) set to a value, or removed for ABSENT."""
    result = copy.deepcopy(original)
    for path, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = result
        for part in parents:
            node = node[part]
        if value is ABSENT:
            del node[last]
        else:
            node[last] = value
    return result


def _patch(content_type: str, original: dict[str, Any], patch: Any) -> dict[str, Any]:
    return apply_patch(content_type=content_type, original=original, body=json.dumps(patch).encode())


@pytest.mark.parametrize(
    ("original", "patch", "changes"),
    [
        pytest.param(
            DEPLOY,
            podspec({"containers": [{"name": "web", "image": "nginx:1.26"}]}),
            {"spec.template.spec.containers.0.image": "nginx:1.26"},
            id="set-image-patches-container-by-name",
        ),
        pytest.param(
            DEPLOY,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T21:00:00Z"}}
                    }
                }
            },
            {
                "spec.template.metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T21:00:00Z"},
                    "labels": {"app": "web"},
                }
            },
            id="rollout-restart-adds-template-annotation",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"labels": {"tier": "back", "env": "prod"}}},
            {"metadata.labels": {"app": "web", "env": "prod", "tier": "back"}},
            id="label-adds-and-overwrites",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"labels": {"tier": None}}},
            {"metadata.labels": {"app": "web"}},
            id="label-minus-removes-with-null",
        ),
        pytest.param(
            SERVICE,
            {"metadata": {"annotations": {"note": "x"}}},
            {"metadata.annotations": {"note": "x"}},
            id="annotate-on-object-without-annotations",
        ),
        pytest.param(DEPLOY, {"spec": {"replicas": 5}}, {"spec.replicas": 5}, id="scale-replaces-scalar"),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"name": "web", "image": "nginx:1.27"}],
                }
            ),
            {"spec.template.spec.containers.0.image": "nginx:1.27"},
            id="apply-changes-image-with-set-element-order",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"$patch": "delete", "name": "sidecar"}],
                }
            ),
            {
                "spec.template.spec.containers": [
                    {
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                        "image": "nginx:1.25",
                        "name": "web",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                    }
                ]
            },
            id="apply-removes-container-with-patch-delete",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/containers": [{"name": "init"}, {"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"name": "init", "image": "alpine"}],
                }
            ),
            {
                "spec.template.spec.containers": [
                    {"image": "alpine", "name": "init"},
                    {
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                        "image": "nginx:1.25",
                        "name": "web",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                    },
                    {"image": "busybox:1.36", "name": "sidecar"},
                ]
            },
            id="apply-adds-container-in-declared-order",
        ),
        pytest.param(
            DEPLOY,
            podspec({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}),
            {
                "spec.template.spec.containers": [
                    {"image": "busybox:1.36", "name": "sidecar"},
                    {
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                        "image": "nginx:1.25",
                        "name": "web",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                    },
                ]
            },
            id="apply-reorders-containers-only",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                            "env": [{"$patch": "delete", "name": "B"}],
                            "name": "web",
                        }
                    ],
                }
            ),
            {"spec.template.spec.containers.0.env": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]},
            id="apply-removes-env-var-and-reorders",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "X"}, {"name": "B"}, {"name": "C"}],
                            "env": [{"name": "X", "value": "x"}],
                            "name": "web",
                        }
                    ]
                }
            ),
            {
                "spec.template.spec.containers.0.env": [
                    {"name": "A", "value": "1"},
                    {"name": "X", "value": "x"},
                    {"name": "B", "value": "2"},
                    {"name": "C", "value": "3"},
                ]
            },
            id="apply-adds-env-var-in-the-middle",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "containers": [
                        {
                            "name": "web",
                            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8080}],
                            "ports": [
                                {"containerPort": 8080, "name": "alt"},
                                {"$patch": "delete", "containerPort": 443},
                            ],
                        }
                    ]
                }
            ),
            {"spec.template.spec.containers.0.ports.1": {"containerPort": 8080, "name": "alt"}},
            id="apply-changes-port-by-container-port",
        ),
        pytest.param(
            DEPLOY,
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}},
            {"spec.strategy": {"type": "Recreate"}},
            id="apply-switches-strategy-with-retain-keys",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/volumes": [{"name": "data"}],
                    "volumes": [{"$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}, "name": "data"}],
                }
            ),
            {"spec.template.spec.volumes.0": {"hostPath": {"path": "/srv"}, "name": "data"}},
            id="apply-changes-volume-source-with-retain-keys",
        ),
        pytest.param(
            DEPLOY,
            podspec({"containers": [{"name": "sidecar", "command": ["sleep", "1"]}]}),
            {
                "spec.template.spec.containers.1": {
                    "command": ["sleep", "1"],
                    "image": "busybox:1.36",
                    "name": "sidecar",
                }
            },
            id="container-command-list-replaces",
        ),
        pytest.param(
            DEPLOY,
            podspec({"tolerations": [{"key": "b", "operator": "Exists"}]}),
            {"spec.template.spec.tolerations.0.key": "b"},
            id="tolerations-are-atomic",
        ),
        pytest.param(
            DEPLOY,
            podspec({"nodeSelector": None}),
            {"spec.template.spec.nodeSelector": ABSENT},
            id="null-deletes-nested-map",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}},
            {"metadata.finalizers": ["example.com/a", "example.com/b", "example.com/c"]},
            id="finalizers-merge-as-a-set",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}},
            {"metadata.finalizers": ["example.com/b"]},
            id="finalizer-removed-with-delete-from-primitive-list",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"$setElementOrder/finalizers": ["example.com/b", "example.com/a"]}},
            {"metadata.finalizers": ["example.com/b", "example.com/a"]},
            id="finalizers-reordered-with-set-element-order",
        ),
        pytest.param(
            DEPLOY,
            podspec({"containers": [{"name": "web", "env": [{"$patch": "replace"}, {"name": "Z", "value": "z"}]}]}),
            {"spec.template.spec.containers.0.env": [{"name": "Z", "value": "z"}]},
            id="env-list-replaced-with-patch-replace",
        ),
        pytest.param(
            DEPLOY,
            podspec({"nodeSelector": {"$patch": "replace", "zone": "a"}}),
            {"spec.template.spec.nodeSelector": {"zone": "a"}},
            id="map-replaced-with-patch-replace",
        ),
        pytest.param(
            DEPLOY,
            {"metadata": {"labels": {"$patch": "delete"}}},
            {"metadata.labels": {}},
            id="map-emptied-with-patch-delete",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "affinity": {
                        "nodeAffinity": None,
                        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": None},
                    },
                    "imagePullSecrets": [{"name": "reg"}, {"$patch": "delete", "name": "old"}],
                }
            ),
            {
                "spec.template.spec.affinity": {"podAffinity": {}},
                "spec.template.spec.imagePullSecrets": [{"name": "reg"}],
            },
            id="new-field-drops-nulls-and-directives",
        ),
        pytest.param(
            SERVICE,
            {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8080, "name": "alt"}]}},
            {
                "spec.ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 9443},
                    {"name": "alt", "port": 8080},
                ]
            },
            id="service-ports-merge-by-port",
        ),
        pytest.param(
            NODE,
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "AgentStopped"}]}},
            {"status.conditions.0": {"reason": "AgentStopped", "status": "False", "type": "Ready"}},
            id="node-conditions-merge-by-type",
        ),
        pytest.param(
            NODE,
            {"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}},
            {
                "status.addresses": [
                    {"address": "1.2.3.4", "type": "ExternalIP"},
                    {"address": "10.0.0.1", "type": "InternalIP"},
                    {"address": "n1", "type": "Hostname"},
                ]
            },
            id="node-addresses-merge-by-type",
        ),
        pytest.param(
            NODE,
            {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
            {"spec.taints.0": {"effect": "NoExecute", "key": "b"}},
            id="node-taints-are-atomic",
        ),
        pytest.param(
            NODE,
            {"spec": {"podCIDRs": ["10.0.1.0/24"]}},
            {"spec.podCIDRs": ["10.0.1.0/24", "10.0.0.0/24"]},
            id="node-pod-cidrs-merge-as-a-set",
        ),
        pytest.param(CM, {"data": {"b": None, "c": "3"}}, {"data": {"a": "1", "c": "3"}}, id="configmap-data-merges"),
        pytest.param(
            CM,
            {
                "metadata": {
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"},
                        {"uid": "u0", "blockOwnerDeletion": True},
                    ]
                }
            },
            {
                "metadata.ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"},
                    {"apiVersion": "v1", "blockOwnerDeletion": True, "kind": "Pod", "name": "q", "uid": "u0"},
                ]
            },
            id="owner-references-merge-by-uid",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "extra"}],
                    "containers": [{"name": "extra", "image": "e"}],
                }
            ),
            {"spec.template.spec.containers": [WEB, {"name": "extra", "image": "e"}, SIDECAR]},
            id="apply-keeps-server-only-container-in-place",
        ),
        pytest.param(
            DEPLOY,
            {
                "metadata": {
                    "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                    "$setElementOrder/finalizers": ["example.com/c", "example.com/b"],
                    "finalizers": ["example.com/c"],
                }
            },
            {"metadata.finalizers": ["example.com/c", "example.com/b"]},
            id="finalizers-delete-add-and-order-together",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {"nodeSelector": {"$patch": "replace", "a": "b"}, "affinity": {"$patch": "replace", "nodeAffinity": {}}}
            ),
            {"spec.template.spec.nodeSelector": {"a": "b"}},
            id="patch-replace-on-missing-map-is-dropped",
        ),
        pytest.param(
            DEPLOY,
            podspec({"containers": [{"name": "web", "resources": {"$patch": "delete"}}]}),
            {},
            id="patch-delete-on-missing-map-is-dropped",
        ),
        pytest.param(
            DEPLOY,
            podspec(
                {"containers": [{"name": "web", "env": [{"name": "A", "value": "9"}, {"name": "D", "value": "4"}]}]}
            ),
            {
                "spec.template.spec.containers.0.env": [
                    {"name": "A", "value": "9"},
                    {"name": "D", "value": "4"},
                    {"name": "B", "value": "2"},
                    {"name": "C", "value": "3"},
                ]
            },
            id="env-merge-updates-and-adds",
        ),
    ],
)
def test_strategic_merge_patch_matches_kubectl(original, patch, changes):
    assert _patch(STRATEGIC_MERGE_PATCH, original, patch) == _changed(original, changes)


def test_patch_leaves_the_original_untouched():
    original = copy.deepcopy(DEPLOY)
    _patch(
        STRATEGIC_MERGE_PATCH,
        original,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}},
    )
    _patch(MERGE_PATCH, original, {"metadata": {"labels": None}})
    _patch(JSON_PATCH, original, [{"op": "remove", "path": "/spec/template"}])
    assert original == DEPLOY


def test_content_type_parameters_are_ignored():
    result = apply_patch(
        content_type="application/merge-patch+json; charset=utf-8", original=CM, body=b'{"data": {"a": "9"}}'
    )
    assert result["data"] == {"a": "9", "b": "2"}


@pytest.mark.parametrize(
    ("patch", "changes"),
    [
        pytest.param({"data": {"b": None, "c": "3"}}, {"data": {"a": "1", "c": "3"}}, id="null-deletes-and-maps-merge"),
        pytest.param(
            {"metadata": {"labels": {"x": "y"}}}, {"metadata.labels": {"x": "y"}}, id="missing-map-is-created"
        ),
        pytest.param(
            {"metadata": {"ownerReferences": [{"uid": "u9"}]}},
            {"metadata.ownerReferences": [{"uid": "u9"}]},
            id="lists-always-replace",
        ),
        pytest.param({"data": "flat"}, {"data": "flat"}, id="map-replaced-by-scalar"),
        pytest.param({"data": {"gone": None}}, {}, id="null-for-missing-key-is-a-no-op"),
    ],
)
def test_merge_patch_follows_rfc_7386(patch, changes):
    assert _patch(MERGE_PATCH, CM, patch) == _changed(CM, changes)


@pytest.mark.parametrize(
    ("patch", "changes"),
    [
        pytest.param([{"op": "replace", "path": "/spec/replicas", "value": 3}], {"spec.replicas": 3}, id="replace"),
        pytest.param(
            [{"op": "add", "path": "/metadata/labels/env", "value": "prod"}],
            {"metadata.labels": {"app": "web", "tier": "front", "env": "prod"}},
            id="add-to-map",
        ),
        pytest.param(
            [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "x", "image": "y"}}],
            {
                "spec.template.spec.containers": [
                    *DEPLOY["spec"]["template"]["spec"]["containers"],
                    {"name": "x", "image": "y"},
                ]
            },
            id="append-to-list",
        ),
        pytest.param(
            [{"op": "remove", "path": "/metadata/labels/tier"}], {"metadata.labels": {"app": "web"}}, id="remove"
        ),
        pytest.param(
            [
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 0},
            ],
            {"spec.replicas": 0},
            id="test-then-replace",
        ),
        pytest.param(
            [
                {"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata/labels"},
                {"op": "move", "from": "/spec/strategy", "path": "/metadata/annotations/moved"},
            ],
            {
                "spec.template.metadata.labels": {"app": "web", "tier": "front"},
                "metadata.annotations.moved": DEPLOY["spec"]["strategy"],
                "spec.strategy": ABSENT,
            },
            id="copy-and-move",
        ),
    ],
)
def test_json_patch_follows_rfc_6902(patch, changes):
    assert _patch(JSON_PATCH, DEPLOY, patch) == _changed(DEPLOY, changes)


@pytest.mark.parametrize(
    ("content_type", "body", "code", "reason", "message"),
    [
        pytest.param(MERGE_PATCH, b"{not json", 400, "BadRequest", "not valid JSON", id="malformed-json"),
        pytest.param(
            STRATEGIC_MERGE_PATCH, b"[1, 2]", 400, "BadRequest", "must be a JSON object", id="smp-body-not-object"
        ),
        pytest.param(MERGE_PATCH, b'"text"', 400, "BadRequest", "must be a JSON object", id="merge-body-not-object"),
        pytest.param(
            JSON_PATCH,
            b'{"op": "add"}',
            400,
            "BadRequest",
            "JSON array of operation objects",
            id="json-patch-not-array",
        ),
        pytest.param(
            JSON_PATCH,
            b'["add"]',
            400,
            "BadRequest",
            "JSON array of operation objects",
            id="json-patch-array-of-strings",
        ),
        pytest.param(
            "application/json",
            b"{}",
            415,
            "UnsupportedMediaType",
            "'application/json' is not supported",
            id="unsupported-content-type",
        ),
        pytest.param(
            JSON_PATCH,
            b'[{"op": "test", "path": "/spec/replicas", "value": 9}]',
            422,
            "Invalid",
            "operation 0 (test /spec/replicas) failed",
            id="json-patch-test-fails",
        ),
        pytest.param(
            JSON_PATCH,
            b'[{"op": "add", "path": "/a", "value": 1}, {"op": "replace", "path": "/nope/x", "value": 1}]',
            422,
            "Invalid",
            "operation 1 (replace /nope/x)",
            id="json-patch-missing-path-names-operation",
        ),
        pytest.param(
            JSON_PATCH,
            b'[{"op": "frobnicate", "path": "/a"}]',
            422,
            "Invalid",
            "operation 0 (frobnicate /a)",
            id="json-patch-unknown-op",
        ),
        pytest.param(
            JSON_PATCH,
            b'[{"op": "replace", "path": "", "value": [1]}]',
            422,
            "Invalid",
            "not a JSON object",
            id="json-patch-replaces-root-with-list",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"template": {"spec": {"containers": [{"image": "y"}]}}}}',
            422,
            "Invalid",
            "does not contain the merge key 'name'",
            id="smp-element-without-merge-key",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}',
            422,
            "Invalid",
            "merge key 'name'",
            id="smp-delete-without-merge-key",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"metadata": {"labels": {"$patch": "bogus"}}}',
            422,
            "Invalid",
            "unknown $patch directive 'bogus'",
            id="smp-unknown-map-directive",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"template": {"spec": {"containers": [{"$patch": "bogus"}]}}}}',
            422,
            "Invalid",
            "unknown $patch directive 'bogus'",
            id="smp-unknown-list-directive",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}',
            422,
            "Invalid",
            "'rollingUpdate' is not listed in $retainKeys",
            id="smp-retain-keys-misses-patched-field",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"strategy": {"$retainKeys": "type"}}}',
            422,
            "Invalid",
            "$retainKeys must be a list",
            id="smp-retain-keys-not-list",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"metadata": {"finalizers": [{"a": 1}]}}',
            422,
            "Invalid",
            "list of primitives",
            id="smp-map-in-primitive-list",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}',
            422,
            "Invalid",
            "$deleteFromPrimitiveList/finalizers must be a list",
            id="smp-delete-list-not-list",
        ),
        pytest.param(
            STRATEGIC_MERGE_PATCH,
            b'{"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}',
            422,
            "Invalid",
            "merge key 'name'",
            id="smp-element-order-without-merge-key",
        ),
    ],
)
def test_bad_patches_are_rejected_with_a_clear_status(content_type, body, code, reason, message):
    with pytest.raises(ApiError) as caught:
        apply_patch(content_type=content_type, original=DEPLOY, body=body)
    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert message in caught.value.message


def test_server_side_apply_creates_when_missing_without_managed_fields():
    applied = copy.deepcopy(CM)
    applied["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert server_side_apply(original=None, applied=applied) == CM


def test_server_side_apply_merges_into_the_existing_object():
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"env": "prod"}},
        "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    }
    result = server_side_apply(original=DEPLOY, applied=applied)
    assert result == _changed(
        DEPLOY,
        {"metadata.labels.env": "prod", "spec.replicas": 4, "spec.template.spec.containers.0.image": "nginx:1.27"},
    )


@pytest.mark.parametrize(
    "applied",
    [
        pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}, id="other-kind"),
        pytest.param({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "c"}}, id="other-api-version"),
        pytest.param(["not", "an", "object"], id="not-an-object"),
    ],
)
def test_server_side_apply_rejects_a_mismatched_object(applied):
    with pytest.raises(ApiError) as caught:
        server_side_apply(original=CM, applied=applied)
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("model", "field", "expected"),
    [
        pytest.param("V1PodSpec", "containers", ("merge", "name"), id="containers-by-name"),
        pytest.param("V1PodSpec", "volumes", ("merge,retainKeys", "name"), id="volumes-retain-keys"),
        pytest.param("V1Container", "ports", ("merge", "containerPort"), id="container-ports"),
        pytest.param("V1ObjectMeta", "finalizers", ("merge", ""), id="primitive-set"),
        pytest.param("V1DeploymentSpec", "strategy", ("retainKeys", ""), id="union-map"),
        pytest.param("V1PodSpec", "tolerations", None, id="tolerations-atomic"),
        pytest.param("V1NodeSpec", "taints", None, id="taints-atomic"),
    ],
)
def test_patch_strategy_publishes_what_kubectl_needs(model, field, expected):
    assert patch_strategy(model, field) == expected
