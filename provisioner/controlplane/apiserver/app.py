"""The HTTP face of the API server: routing, authentication, authorization and Status errors.

Every request becomes a `RequestInfo`; a middleware authenticates it (401 when nobody), asks RBAC
(403 naming user, verb and resource) and turns any `ApiError` into a JSON `Status`. Resource
requests go to the `Registry` (storage semantics) or to `serve_watch` (streams); discovery and
OpenAPI documents are answered from the resource table and the schema modules. All handlers run on
the event loop and never block.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from provisioner.controlplane.apiserver import discovery
from provisioner.controlplane.apiserver.authn import Authenticator, UserInfo
from provisioner.controlplane.apiserver.negotiation import MAX_BODY_BYTES, parse_object, read_body, wants_table
from provisioner.controlplane.apiserver.patch import APPLY_PATCH, apply_patch, server_side_apply
from provisioner.controlplane.apiserver.rbac import RBACAuthorizer, RequestAttributes, forbidden
from provisioner.controlplane.apiserver.registry import Registry
from provisioner.controlplane.apiserver.requestinfo import RequestInfo, go_bool, parse_request
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind, by_plural
from provisioner.controlplane.apiserver.selectors import parse_field_selector, parse_label_selector
from provisioner.controlplane.apiserver.status import ApiError, status_body
from provisioner.controlplane.apiserver.subresources import (
    KubeletClient,
    bind_pod,
    proxy_pod_log,
    scale_of,
    with_scale,
)
from provisioner.controlplane.apiserver.validation import unknown_fields
from provisioner.controlplane.apiserver.watch import WatchRequest, serve_watch
from provisioner.controlplane.store import StoreError, Unavailable, WatchCache

__all__ = ["Documents", "build_app", "serving_ssl_context"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
_NODES = by_kind("v1", "Node")
_USER_KEY = web.AppKey("user", UserInfo)
_INFO_KEY = web.AppKey("info", RequestInfo)


@dataclass(frozen=True)
class Documents:
    """Documents that come from the schema modules: OpenAPI v3 and Table rendering."""

    openapi_index: Callable[[], Obj]
    openapi_document: Callable[[str, str], Obj | None]
    to_table: Callable[..., Obj]  # (rt, objects, *, include_object) -> Table


@dataclass(frozen=True)
class _Context:
    registry: Registry
    cache: WatchCache
    authenticator: Authenticator
    authorizer: RBACAuthorizer
    documents: Documents
    kubelet: KubeletClient
    server_address: str
    bookmark_interval: float


def serving_ssl_context(*, cert_file: Path, key_file: Path, client_ca_file: Path) -> ssl.SSLContext:
    """HTTPS that asks for (but does not require) a client certificate signed by the cluster CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps(**options) builds an encoder per call


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(body).encode(), status=status, content_type="application/json")


def _status_response(error: ApiError) -> web.Response:
    return _json(error.to_status(), error.code)


def _checked_fields(rt: ResourceType, obj: Obj, request: web.Request) -> dict[str, str]:
    """Apply `?fieldValidation=`: Strict refuses unknown fields, Warn (the default) reports them in headers."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode == "Ignore":
        return {}
    unknown = unknown_fields(rt, obj)
    if not unknown:
        return {}
    described = ", ".join(f'unknown field "{path}"' for path in unknown)
    if mode == "Strict":
        raise ApiError(400, "BadRequest", f"strict decoding error: {described}")
    return {"Warning": ", ".join('299 - "unknown field \\"' + path + '\\""' for path in unknown)}


def _int_query(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "BadRequest", f"query parameter {name} must be an integer, not {text!r}") from None


def _not_served(path: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def build_app(
    *,
    registry: Registry,
    cache: WatchCache,
    authenticator: Authenticator,
    authorizer: RBACAuthorizer,
    documents: Documents,
    kubelet: KubeletClient,
    server_address: str,
    bookmark_interval: float = 10.0,
) -> web.Application:
    ctx = _Context(registry, cache, authenticator, authorizer, documents, kubelet, server_address,
                   bookmark_interval)

    @web.middleware
    async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _status_response(error)
        except Unavailable as error:
            return _status_response(ApiError(503, "ServiceUnavailable", f"etcd is unavailable: {error}"))
        except StoreError as error:
            log.exception("store failure on %s %s", request.method, request.path)
            return _status_response(ApiError(500, "InternalError", f"storage error: {error}"))
        except web.HTTPException:
            raise
        except Exception as error:
            log.exception("internal error on %s %s", request.method, request.path)
            return _status_response(ApiError(500, "InternalError", f"an internal error occurred: {error!r}"))

    @web.middleware
    async def authenticate_and_authorize(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        info = parse_request(request.method, request.path, request.query)
        request[_INFO_KEY] = info
        if request.path in _ANONYMOUS_PATHS:
            return await handler(request)
        user = ctx.authenticator.authenticate(request)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        request[_USER_KEY] = user
        attrs = RequestAttributes(user=user, verb=info.verb, group=info.group, resource=info.resource,
                                  subresource=info.subresource, namespace=info.namespace, name=info.name,
                                  path=request.path, resource_request=info.resource_request)
        decision = await ctx.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision)
        return await handler(request)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        info = request[_INFO_KEY]
        if info.resource_request:
            return await _resource(ctx, request, info)
        if request.path.rstrip("/") == "/readyz":
            return await _readyz(ctx)
        return _non_resource(ctx, request.path)

    app = web.Application(middlewares=[errors, authenticate_and_authorize], client_max_size=MAX_BODY_BYTES * 2)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def _readyz(ctx: _Context) -> web.Response:
    """Ready when etcd answers: a load balancer then sends clients only to servers that can serve them."""
    try:
        await ctx.registry.store.ping()
    except Unavailable as error:
        return web.Response(text=f"[-]etcd failed: {error}\nreadyz check failed\n", status=500,
                            content_type="text/plain")
    return web.Response(text="ok", content_type="text/plain")


def _non_resource(ctx: _Context, path: str) -> web.Response:
    path = path.rstrip("/") or "/"
    if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
        return web.Response(text="ok", content_type="text/plain")
    if path == "/version":
        return _json(discovery.version_info())
    if path == "/api":
        return _json(discovery.api_versions(ctx.server_address))
    if path == "/apis":
        return _json(discovery.api_group_list())
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        found = discovery.api_resource_list("", parts[1])
        if found is not None:
            return _json(found)
    if parts[0] == "apis" and len(parts) == 2:
        group = next((g for g in discovery.api_group_list()["groups"] if g["name"] == parts[1]), None)
        if group is not None:
            return _json({"kind": "APIGroup", "apiVersion": "v1", **group})
    if parts[0] == "apis" and len(parts) == 3:
        found = discovery.api_resource_list(parts[1], parts[2])
        if found is not None:
            return _json(found)
    if path == "/openapi/v3":
        return _json(ctx.documents.openapi_index())
    if parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
        group, version = ("", parts[3]) if parts[2] == "api" else (parts[3], parts[4] if len(parts) == 5 else "")
        doc = ctx.documents.openapi_document(group, version) if version else None
        if doc is not None:
            return _json(doc)
    raise _not_served(path)


def _resource_type(info: RequestInfo) -> ResourceType:
    rt = by_plural(info.group, info.version, info.resource)
    if rt is None:
        raise _not_served(info.path)
    allowed = rt.subresources | ({"finalize"} if rt.kind == "Namespace" else set())
    if info.subresource and info.subresource not in allowed:
        raise _not_served(info.path)
    return rt


def _render(ctx: _Context, request: web.Request, rt: ResourceType, objects: list[Obj], *, single: bool,
            list_meta: Obj | None = None) -> web.Response:
    if wants_table(request):
        table = ctx.documents.to_table(rt, objects, include_object=request.query.get("includeObject", "Metadata"))
        if list_meta:
            table.setdefault("metadata", {}).update(list_meta)
        return _json(table)
    if single:
        return _json(objects[0])
    return _json({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta or {},
                  "items": objects})


async def _resource(ctx: _Context, request: web.Request, info: RequestInfo) -> web.StreamResponse:
    rt = _resource_type(info)
    namespace = info.namespace or None if rt.namespaced else None
    if rt.namespaced and info.name and not namespace:
        raise _not_served(info.path)
    if rt.kind == "Namespace" and info.name:
        namespace = None
    dry_run = "All" in request.query.getall("dryRun", [])
    registry = ctx.registry
    verb, sub, name = info.verb, info.subresource, info.name

    if verb in ("list", "watch"):
        labels = parse_label_selector(request.query["labelSelector"]) if request.query.get("labelSelector") else None
        fields = parse_field_selector(request.query["fieldSelector"]) if request.query.get("fieldSelector") else None
        if verb == "watch":
            render = None
            if wants_table(request):
                include = request.query.get("includeObject", "Metadata")

                def render(obj: Obj) -> Obj:
                    return ctx.documents.to_table(rt, [obj], include_object=include)

            timeout = _int_query(request, "timeoutSeconds")
            w = WatchRequest(rt=rt, namespace=namespace, resource_version=request.query.get("resourceVersion", ""),
                             labels=labels, fields=fields, timeout=float(timeout) if timeout else None,
                             bookmarks=go_bool(request.query.get("allowWatchBookmarks")), render=render)
            return await serve_watch(request, w, registry=registry, cache=ctx.cache,
                                     bookmark_interval=ctx.bookmark_interval)
        limit = _int_query(request, "limit")
        result = await registry.list(rt, namespace, labels=labels, fields=fields, limit=limit if limit else None,
                                     continue_token=request.query.get("continue", ""))
        meta: Obj = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        return _render(ctx, request, rt, result.items, single=False, list_meta=meta)

    if verb == "create" and not sub:
        body = parse_object(await read_body(request), request.headers.get("Content-Type", ""))
        warnings = _checked_fields(rt, body, request)
        response = _json(await registry.create(rt, body, namespace, dry_run=dry_run), 201)
        response.headers.update(warnings)
        return response

    if verb == "get":
        if sub == "log":
            pod = await registry.get(rt, name, namespace)
            node_name = (pod.get("spec") or {}).get("nodeName")
            node = None
            if node_name and _NODES is not None:
                try:
                    node = await registry.get(_NODES, node_name, None)
                except ApiError:
                    node = None
            return await proxy_pod_log(request, pod=pod, node=node, kubelet=ctx.kubelet)
        obj = await registry.get(rt, name, namespace)
        if sub == "scale":
            return _json(scale_of(obj))
        return _render(ctx, request, rt, [obj], single=True)

    if verb == "create" and sub == "binding":
        binding = parse_object(await read_body(request), request.headers.get("Content-Type", ""))
        await registry.patch(rt, name=name, namespace=namespace, subresource="",
                             apply=lambda pod: bind_pod(pod, binding), dry_run=dry_run)
        return _json(status_body(code=201, reason="", message=""), 201)

    if verb == "update":
        body = parse_object(await read_body(request), request.headers.get("Content-Type", ""))
        if sub == "scale":
            obj = await registry.patch(rt, name=name, namespace=namespace, subresource="",
                                       apply=lambda current: with_scale(rt, current, body), dry_run=dry_run)
            return _json(scale_of(obj))
        warnings = _checked_fields(rt, body, request)
        obj = await registry.update(rt, body, name=name, namespace=namespace, subresource=sub, dry_run=dry_run)
        response = _json(obj)
        response.headers.update(warnings)
        return response

    if verb == "patch":
        return await _patch(ctx, request, rt, name=name, namespace=namespace, sub=sub, dry_run=dry_run)

    if verb == "delete":
        options: Obj = {}
        body = await read_body(request)
        if body.strip():
            options = parse_object(body, request.headers.get("Content-Type", ""))
        grace = _int_query(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        obj = await registry.delete(rt, name=name, namespace=namespace, options=options, dry_run=dry_run)
        return _json(obj)

    if verb == "deletecollection":
        labels = parse_label_selector(request.query["labelSelector"]) if request.query.get("labelSelector") else None
        fields = parse_field_selector(request.query["fieldSelector"]) if request.query.get("fieldSelector") else None
        result = await registry.list(rt, namespace, labels=labels, fields=fields)
        deleted = []
        for obj in result.items:
            meta = obj["metadata"]
            try:
                deleted.append(await registry.delete(rt, name=meta["name"], namespace=meta.get("namespace"),
                                                     options={}, dry_run=dry_run))
            except ApiError as error:
                if error.code != 404:
                    raise
        return _json({"kind": rt.list_kind, "apiVersion": rt.api_version,
                      "metadata": {"resourceVersion": str(result.revision)}, "items": deleted})

    raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {info.path}")


async def _patch(ctx: _Context, request: web.Request, rt: ResourceType, *, name: str, namespace: str | None,
                 sub: str, dry_run: bool) -> web.Response:
    content_type = request.headers.get("Content-Type", "")
    body = await read_body(request)
    registry = ctx.registry
    if content_type.partition(";")[0].strip() == APPLY_PATCH:
        try:
            applied = yaml.safe_load(body)
        except yaml.YAMLError as error:
            raise ApiError(400, "BadRequest", f"the apply patch is not valid YAML: {error}") from None
        try:
            await registry.get(rt, name, namespace)
        except ApiError as error:
            if error.code != 404 or sub:
                raise
            created = server_side_apply(original=None, applied=applied)
            created.setdefault("metadata", {}).setdefault("name", name)
            return _json(await registry.create(rt, created, namespace, dry_run=dry_run), 201)

        def change(current: Obj) -> Obj:
            return server_side_apply(original=current, applied=applied)
    elif sub == "scale":
        def change(current: Obj) -> Obj:
            return with_scale(rt, current, apply_patch(content_type=content_type, original=scale_of(current),
                                                       body=body))
    else:
        def change(current: Obj) -> Obj:
            return apply_patch(content_type=content_type, original=current, body=body)

    obj = await registry.patch(rt, name=name, namespace=namespace, subresource="" if sub == "scale" else sub,
                               apply=change, dry_run=dry_run)
    return _json(scale_of(obj) if sub == "scale" else obj)
