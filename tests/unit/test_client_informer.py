"""SharedInformer cache semantics without a server: re-list diffs, watch events, indexes, mutation checks.

The informer only needs `list` and `watch` from its client; a scripted stand-in plays a server whose
watch ends after its scripted events (or fails with 410 Expired), so every path is deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from provisioner.controlplane.client import CacheMutationError, SharedInformer, WatchExpired, resource

CONFIGMAPS = resource("configmaps")


def cm(name: str, rv: int, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv), "labels": labels}}


class ScriptedServer:
    """Answers each list with the next snapshot and each watch with the next script of events."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[tuple[str, dict[str, Any]] | str]]):
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.exhausted = asyncio.Event()

    async def list(self, rt: Any, **_: Any) -> tuple[list[dict[str, Any]], str]:
        items = self.lists.pop(0)
        return items, str(max((int(i["metadata"]["resourceVersion"]) for i in items), default=1))

    async def watch(self, rt: Any, *, resource_version: str, **_: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        if not self.watches:
            self.exhausted.set()
            await asyncio.Event().wait()
        for event in self.watches.pop(0):
            if event == "expired":
                raise WatchExpired(410, "Expired", "too old resource version")
            yield event


def run_until_exhausted(informer: SharedInformer, server: ScriptedServer) -> None:
    async def main() -> None:
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(server.exhausted.wait(), timeout=5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def recorder(informer: SharedInformer) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    informer.add_handler(
        on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
        on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])),
    )
    return seen


def test_watch_resumes_from_the_last_seen_resource_version_after_a_clean_end():
    server = ScriptedServer([[cm("a", 5)]], [[("MODIFIED", cm("a", 7))], [("ADDED", cm("b", 9))]])
    informer = SharedInformer(server, CONFIGMAPS)  # type: ignore[arg-type]
    seen = recorder(informer)
    run_until_exhausted(informer, server)
    assert server.watched_from == ["5", "7", "9"]
    assert seen == [("add", "a"), ("update", "a"), ("add", "b")]


def test_expired_watch_relists_and_delivers_the_difference():
    server = ScriptedServer(
        lists=[[cm("a", 5), cm("b", 6)], [cm("b", 6), cm("c", 12)]],
        watches=[["expired"]],
    )
    informer = SharedInformer(server, CONFIGMAPS)  # type: ignore[arg-type]
    seen = recorder(informer)
    run_until_exhausted(informer, server)
    assert seen == [("add", "a"), ("add", "b"), ("delete", "a"), ("add", "c")]
    assert sorted(o["metadata"]["name"] for o in informer.list()) == ["b", "c"]
    assert informer.has_synced.is_set()


def test_updates_with_an_unchanged_resource_version_are_not_delivered():
    server = ScriptedServer([[cm("a", 5)]], [[("MODIFIED", cm("a", 5))]])
    informer = SharedInformer(server, CONFIGMAPS)  # type: ignore[arg-type]
    seen = recorder(informer)
    run_until_exhausted(informer, server)
    assert seen == [("add", "a")]


def test_indexes_follow_changes_and_deletions():
    server = ScriptedServer(
        [[cm("a", 5, color="red")]],
        [[("MODIFIED", cm("a", 6, color="blue")), ("ADDED", cm("b", 7, color="blue")), ("DELETED", cm("a", 8))]],
    )
    informer = SharedInformer(server, CONFIGMAPS)  # type: ignore[arg-type]
    informer.add_indexer("color", lambda o: [o["metadata"]["labels"].get("color", "")])
    run_until_exhausted(informer, server)
    assert [o["metadata"]["name"] for o in informer.by_index("color", "blue")] == ["b"]
    assert informer.by_index("color", "red") == []
    assert [o["metadata"]["name"] for o in informer.by_index("namespace", "ns")] == ["b"]


def test_mutating_a_cached_object_is_detected():
    server = ScriptedServer([[cm("a", 5)]], [])
    informer = SharedInformer(server, CONFIGMAPS, check_mutations=True)  # type: ignore[arg-type]
    run_until_exhausted(informer, server)
    informer.verify_all()
    informer.get("ns/a")["metadata"]["labels"]["oops"] = "x"  # type: ignore[index]
    with pytest.raises(CacheMutationError, match="ns/a"):
        informer.verify_all()
