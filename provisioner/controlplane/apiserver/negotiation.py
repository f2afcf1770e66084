"""Request bodies in (JSON or YAML, size-limited, never protobuf) and response forms out (object or Table).

Parsing happens once, here, at the edge; everything behind it works on plain dicts.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from provisioner.controlplane.apiserver.status import ApiError

__all__ = ["MAX_BODY_BYTES", "read_body", "read_object", "wants_table"]

MAX_BODY_BYTES = 3 * 1024 * 1024 // 2  # 1.5 MiB, kube-apiserver's limit for a request body

_PROTOBUF = "application/vnd.kubernetes.protobuf"


def _too_large() -> ApiError:
    return ApiError(413, "RequestEntityTooLarge",
                    f"the request body is larger than the API server's limit of {MAX_BODY_BYTES} bytes (1.5 MiB)")


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing protobuf and anything over 1.5 MiB before reading it all."""
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith(_PROTOBUF):
        raise ApiError(415, "UnsupportedMediaType",
                       "this API server does not accept Protocol Buffers request bodies "
                       f"(Content-Type {_PROTOBUF}); send application/json or application/yaml "
                       "(kubectl's typed generators such as `kubectl create deployment` send protobuf: "
                       "use `kubectl create -f` or `kubectl apply -f` with a manifest instead)")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large()
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    return body


def parse_object(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON or YAML body as a dict; malformed input is a 400 naming the parser's complaint."""
    if not body.strip():
        raise ApiError(400, "BadRequest", "the request body is empty; send a JSON or YAML object")
    is_yaml = "yaml" in content_type
    try:
        value = yaml.safe_load(body) if is_yaml else json.loads(body)
    except (ValueError, yaml.YAMLError) as error:
        what = "YAML" if is_yaml else "JSON"
        raise ApiError(400, "BadRequest", f"the request body is not valid {what}: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "BadRequest", f"the request body must be an object, not {type(value).__name__}")
    return value


async def read_object(request: web.Request) -> dict[str, Any]:
    return parse_object(await read_body(request), request.headers.get("Content-Type", ""))


def wants_table(request: web.Request) -> bool:
    """True when the first acceptable form the client lists is a meta.k8s.io Table."""
    for media in request.headers.get("Accept", "").split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in media.split(";")[1:])}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        if media.split(";")[0].strip() in ("application/json", "*/*", "application/yaml"):
            return False
    return False
