"""The agent's log endpoint, which the API server's `pods/log` proxies to (`kubectl logs [-f]`).

    GET https://<node address>:10250/containerLogs/<namespace>/<pod>/<container>
        ?follow=true       keep streaming until the container's current attempt ends
        ?tailLines=N       start with the last N lines
        ?previous=true     the attempt before the current one
        ?limitBytes=N      stop after N bytes

Plain text (`text/plain; charset=utf-8`), chunked. TLS with a server certificate from the cluster CA,
and only for clients with a certificate from that CA (the API server's kubelet client certificate):
container output may hold secrets, so an anonymous handshake is refused.
404 with a one-line text body when the pod, container or attempt is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from provisioner.controlplane.agent.runtime import Attempt

__all__ = ["AttemptResolver", "LogServer", "tail"]

log = logging.getLogger(__name__)

AttemptResolver = Callable[[str, str, str, bool], Attempt | None]  # (namespace, pod, container, previous)
_CHUNK = 64 * 1024
_FOLLOW_POLL = 0.2
_TRUE = ("true", "1", "yes")


def tail(path: Path, lines: int) -> int:
    """Byte offset where the last `lines` lines of `path` start."""
    size = path.stat().st_size
    if lines <= 0:
        return size
    with path.open("rb") as f:
        position, seen = size, 0
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            if position + step == size and block.endswith(b"\n"):
                block = block[:-1]  # the final newline does not start a line
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 0x0A:
                    seen += 1
                    if seen == lines:
                        return position + i + 1
    return 0


class LogServer:
    def __init__(
        self,
        *,
        address: str,
        port: int,
        cert_file: Path,
        key_file: Path,
        ca_file: Path,
        resolve: AttemptResolver,
    ) -> None:
        self.address = address
        self.port = port
        self.resolve = resolve
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
        self._ssl.load_cert_chain(str(cert_file), str(key_file))
        self._ssl.verify_mode = ssl.CERT_REQUIRED
        self.app = web.Application()
        self.app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self.app.router.add_get("/healthz", self._healthz)

    async def run(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.address, self.port, ssl_context=self._ssl).start()
            log.info("serving container logs on https://%s:%d", self.address, self.port)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        m, q = request.match_info, request.query
        previous = q.get("previous", "").lower() in _TRUE
        attempt = self.resolve(m["namespace"], m["pod"], m["container"], previous)
        if attempt is None or not attempt.log_file.exists():
            what = "previous terminated container" if previous else "container"
            return web.Response(status=404, text=f"{what} {m['container']!r} of pod {m['namespace']}/{m['pod']} "
                                                 "not found on this node\n")
        try:
            tail_lines = int(q["tailLines"]) if "tailLines" in q else None
            limit = int(q["limitBytes"]) if "limitBytes" in q else None
        except ValueError:
            return web.Response(status=400, text="tailLines and limitBytes must be integers\n")
        follow = q.get("follow", "").lower() in _TRUE
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        offset = tail(attempt.log_file, tail_lines) if tail_lines is not None else 0
        remaining = limit
        with attempt.log_file.open("rb") as f:
            f.seek(offset)
            while remaining is None or remaining > 0:
                ended = attempt.exit() is not None  # read after checking, so no final output is lost
                chunk = f.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                if chunk:
                    await response.write(chunk)
                    remaining = None if remaining is None else remaining - len(chunk)
                    continue
                if not follow or ended:
                    break
                await asyncio.sleep(_FOLLOW_POLL)
        await response.write_eof()
        return response
