"""core/v1 Events for what a component does, so `kubectl describe` tells the story.

Best effort: a failed Event write is logged, never raised, because no loop should fail or retry over
its diary. Repeats of the same (object, type, reason, message) bump `count` on the existing Event
instead of creating a new one, as the Kubernetes recorder does.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from provisioner.controlplane.client.api import ApiClient, ApiStatusError, resource

__all__ = ["EventRecorder"]

log = logging.getLogger(__name__)

EVENTS = resource("events")
_MAX_REMEMBERED = 4096


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Records Events as `component` (the `source.component` and `reportingController`)."""

    def __init__(self, client: ApiClient, *, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host or socket.gethostname()
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}

    async def record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """One Event about `obj` (type_ "Normal" or "Warning")."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        fingerprint = (meta.get("uid", meta["name"]), type_, reason, message)
        now = _now()
        try:
            previous = self._seen.get(fingerprint)
            if previous is not None:
                name, event_namespace, count = previous
                try:
                    await self.client.patch(
                        EVENTS, name, {"count": count + 1, "lastTimestamp": now}, namespace=event_namespace
                    )
                    self._remember(fingerprint, (name, event_namespace, count + 1))
                    return
                except ApiStatusError as exc:
                    if not exc.not_found:
                        raise
            name = f"{meta['name']}.{time.time_ns():x}"
            await self.client.create(
                EVENTS,
                self._event(obj, name=name, namespace=namespace, type_=type_, reason=reason, message=message, now=now),
            )
            self._remember(fingerprint, (name, namespace, 1))
        except (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("event %s %s on %s/%s not recorded: %s", type_, reason, namespace, meta["name"], exc)

    def _remember(self, fingerprint: tuple[str, str, str, str], value: tuple[str, str, int]) -> None:
        if fingerprint not in self._seen and len(self._seen) >= _MAX_REMEMBERED:
            self._seen.pop(next(iter(self._seen)))
        self._seen[fingerprint] = value

    def _event(
        self, obj: Mapping[str, Any], *, name: str, namespace: str, type_: str, reason: str, message: str, now: str
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        involved = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""), "name": meta["name"]}
        for field, value in (
            ("namespace", meta.get("namespace")),
            ("uid", meta.get("uid")),
            ("resourceVersion", meta.get("resourceVersion")),
        ):
            if value:
                involved[field] = value
        return {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
