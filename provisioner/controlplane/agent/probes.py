"""Liveness, readiness and startup checks: exec, httpGet and tcpSocket, as the kubelet runs them.

`check()` runs one probe once and returns a `ProbeResult`; `Prober` tracks thresholds over time
(initialDelaySeconds, periodSeconds, successThreshold, failureThreshold) for one container.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["ProbeResult", "Prober", "check"]


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str = ""


def _port(value: Any, named_ports: Mapping[str, int]) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    if value in named_ports:
        return named_ports[value]
    raise ValueError(f"unknown port name {value!r}")


async def _exec(command: list[str], *, env: Mapping[str, str], cwd: str | None) -> ProbeResult:
    process = await asyncio.create_subprocess_exec(
        *command, env=dict(env), cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    text = output.decode(errors="replace").strip()[-500:]
    if process.returncode == 0:
        return ProbeResult(True, text)
    return ProbeResult(False, f"command {command!r} exited with {process.returncode}: {text}")


async def _http_get(spec: Mapping[str, Any], *, host: str, port: int) -> ProbeResult:
    scheme = str(spec.get("scheme", "HTTP")).lower()
    path = str(spec.get("path", "/"))
    url = f"{scheme}://{spec.get('host') or host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # as the kubelet: HTTPS probes skip verify
    async with aiohttp.ClientSession() as session, session.get(
        url, headers=headers, ssl=insecure if scheme == "https" else None, allow_redirects=False
    ) as resp:
        if 200 <= resp.status < 400:
            return ProbeResult(True, f"HTTP {resp.status}")
        return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status}")


async def _tcp(host: str, port: int) -> ProbeResult:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


async def check(
    probe: Mapping[str, Any],
    *,
    host: str,
    named_ports: Mapping[str, int],
    env: Mapping[str, str],
    cwd: str | None = None,
) -> ProbeResult:
    """Run `probe` once against a container whose ports listen on `host`."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        async with asyncio.timeout(timeout):
            if "exec" in probe:
                return await _exec(list(probe["exec"].get("command") or []), env=env, cwd=cwd)
            if "httpGet" in probe:
                spec = probe["httpGet"]
                return await _http_get(spec, host=host, port=_port(spec["port"], named_ports))
            if "tcpSocket" in probe:
                spec = probe["tcpSocket"]
                return await _tcp(spec.get("host") or host, _port(spec["port"], named_ports))
    except TimeoutError:
        return ProbeResult(False, f"probe timed out after {timeout:g}s")
    except (OSError, aiohttp.ClientError, ValueError) as exc:
        return ProbeResult(False, f"probe failed: {exc}")
    return ProbeResult(False, "probe has no exec, httpGet or tcpSocket handler")


class Prober:
    """Thresholds of one probe of one container: `passing` flips after enough consecutive results."""

    def __init__(self, probe: Mapping[str, Any], *, initially: bool) -> None:
        self.probe = probe
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self.period = float(probe.get("periodSeconds") or 10)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.passing = initially
        self.last = ProbeResult(initially)
        self._successes = 0
        self._failures = 0

    def record(self, result: ProbeResult) -> bool:
        """Count one result; True when `passing` changed."""
        self.last = result
        if result.success:
            self._successes, self._failures = self._successes + 1, 0
            flip = not self.passing and self._successes >= self.success_threshold
        else:
            self._successes, self._failures = 0, self._failures + 1
            flip = self.passing and self._failures >= self.failure_threshold
        if flip:
            self.passing = not self.passing
        return flip
