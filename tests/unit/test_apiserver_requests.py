"""Request parsing (paths, verbs, Go booleans) and continue tokens, as kube-apiserver reads them."""

from __future__ import annotations

import pytest

from provisioner.controlplane.apiserver.paging import decode_continue, encode_continue
from provisioner.controlplane.apiserver.requestinfo import go_bool, parse_request
from provisioner.controlplane.apiserver.status import ApiError


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    pytest.param("GET", "/api/v1/namespaces/ns1/pods", {}, ("list", "", "pods", "", "ns1", ""), id="list-in-ns"),
    pytest.param("GET", "/api/v1/pods", {"watch": "True"}, ("watch", "", "pods", "", "", ""), id="watch-python-bool"),
    pytest.param("GET", "/api/v1/watch/namespaces/a/pods", {}, ("watch", "", "pods", "", "a", ""), id="legacy-watch"),
    pytest.param("POST", "/apis/apps/v1/namespaces/a/deployments", {}, ("create", "apps", "deployments", "", "a", ""),
                 id="create"),
    pytest.param("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", {},
                 ("patch", "apps", "deployments", "scale", "a", "d"), id="scale-subresource"),
    pytest.param("GET", "/api/v1/namespaces/foo", {}, ("get", "", "namespaces", "", "foo", "foo"),
                 id="namespace-itself"),
    pytest.param("PUT", "/api/v1/namespaces/foo/finalize", {}, ("update", "", "namespaces", "finalize", "foo", "foo"),
                 id="namespace-finalize"),
    pytest.param("DELETE", "/api/v1/namespaces/a/configmaps", {}, ("deletecollection", "", "configmaps", "", "a", ""),
                 id="deletecollection"),
    pytest.param("POST", "/api/v1/namespaces/a/pods/p/binding", {}, ("create", "", "pods", "binding", "a", "p"),
                 id="binding"),
])
def test_resource_requests_name_verb_resource_and_scope(method: str, path: str, query: dict[str, str],
                                                        expected: tuple[str, ...]) -> None:
    info = parse_request(method, path, query)
    assert info.resource_request
    assert (info.verb, info.group, info.resource, info.subresource, info.namespace, info.name) == expected


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/version", "/healthz", "/openapi/v3"])
def test_discovery_and_health_paths_are_non_resource_requests(path: str) -> None:
    info = parse_request("GET", path, {})
    assert not info.resource_request and info.verb == "get"


@pytest.mark.parametrize(("text", "value"), [("true", True), ("True", True), ("1", True), ("t", True),
                                             ("false", False), ("0", False), ("", False), (None, False)])
def test_query_booleans_parse_like_go(text: str | None, value: bool) -> None:
    assert go_bool(text) is value


def test_an_unparseable_boolean_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as error:
        go_bool("yes")
    assert error.value.code == 400


def test_continue_tokens_round_trip_and_are_bound_to_their_list() -> None:
    token = encode_continue(revision=42, start_after="/registry/core/pods/a/p1")
    assert decode_continue(token, prefix="/registry/core/pods/a/") == (42, "/registry/core/pods/a/p1")
    with pytest.raises(ApiError) as other_list:
        decode_continue(token, prefix="/registry/core/secrets/")
    assert other_list.value.code == 400
    with pytest.raises(ApiError) as garbage:
        decode_continue("not-a-token!", prefix="/registry/")
    assert garbage.value.code == 400
