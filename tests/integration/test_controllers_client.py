"""The shared client machinery (ApiClient, SharedInformer, LeaderElector, EventRecorder) on the real dev cluster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import DevCluster

from provisioner.controlplane.client import (
    ApiClient,
    ApiStatusError,
    EventRecorder,
    InformerFactory,
    LeaderElector,
    SharedInformer,
    resource,
)

pytestmark = pytest.mark.integration

CONFIGMAPS = resource("configmaps")
NAMESPACES = resource("namespaces")
EVENTS = resource("events")
LEASES = resource("leases")


def run(dev_cluster: DevCluster, scenario: Callable[[ApiClient, str], Awaitable[None]]) -> None:
    """Run `scenario(client, namespace)` in a fresh namespace with a client from the admin kubeconfig."""

    async def main() -> None:
        async with ApiClient.from_kubeconfig(dev_cluster.kubeconfig) as client:
            namespace = f"client-{uuid.uuid4().hex[:6]}"
            await client.create(NAMESPACES, {"metadata": {"name": namespace}})
            await asyncio.wait_for(scenario(client, namespace), timeout=120)

    asyncio.run(main())


async def eventually(predicate: Callable[[], Any], what: str) -> None:
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_crud_round_trip_and_status_errors(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        created = await client.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": ns}, "data": {"k": "1"}})
        assert created["metadata"]["uid"] and created["kind"] == "ConfigMap"
        assert (await client.get(CONFIGMAPS, "a", namespace=ns))["data"] == {"k": "1"}
        updated = await client.update(CONFIGMAPS, {**created, "data": {"k": "2"}})
        with pytest.raises(ApiStatusError) as stale:
            await client.update(CONFIGMAPS, {**created, "data": {"k": "3"}})
        assert stale.value.conflict and stale.value.reason == "Conflict"
        patched = await client.patch(CONFIGMAPS, "a", {"data": {"x": "y"}}, namespace=ns)
        assert patched["data"] == {"k": "2", "x": "y"}
        patched = await client.patch(
            CONFIGMAPS, "a", [{"op": "remove", "path": "/data/x"}], namespace=ns, patch_type="json"
        )
        assert patched["data"] == {"k": "2"} and int(patched["metadata"]["resourceVersion"]) > int(
            updated["metadata"]["resourceVersion"]
        )
        with pytest.raises(ApiStatusError) as duplicate:
            await client.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": ns}})
        assert duplicate.value.code == 409 and duplicate.value.reason == "AlreadyExists"
        await client.delete(CONFIGMAPS, "a", namespace=ns)
        with pytest.raises(ApiStatusError) as gone:
            await client.get(CONFIGMAPS, "a", namespace=ns)
        assert gone.value.not_found

    run(dev_cluster, scenario)


def test_list_follows_continue_and_watch_streams_changes_in_order(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        for i in range(3):
            await client.create(CONFIGMAPS, {"metadata": {"name": f"m{i}", "namespace": ns, "labels": {"i": str(i)}}})
        items, rv = await client.list(CONFIGMAPS, namespace=ns)
        assert sorted(i["metadata"]["name"] for i in items) == ["m0", "m1", "m2"] and rv
        assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in items)
        selected, _ = await client.list(CONFIGMAPS, namespace=ns, label_selector="i in (0,2)")
        assert sorted(i["metadata"]["name"] for i in selected) == ["m0", "m2"]

        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for type_, obj in client.watch(CONFIGMAPS, namespace=ns, resource_version=rv):
                if type_ != "BOOKMARK":
                    seen.append((type_, obj["metadata"]["name"]))
                if len(seen) == 3:
                    return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        await client.create(CONFIGMAPS, {"metadata": {"name": "m3", "namespace": ns}})
        await client.patch(CONFIGMAPS, "m3", {"data": {"a": "b"}}, namespace=ns)
        await client.delete(CONFIGMAPS, "m0", namespace=ns)
        await asyncio.wait_for(watcher, timeout=30)
        assert seen == [("ADDED", "m3"), ("MODIFIED", "m3"), ("DELETED", "m0")]

    run(dev_cluster, scenario)


def test_informer_caches_indexes_and_notifies_handlers(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        await client.create(CONFIGMAPS, {"metadata": {"name": "before", "namespace": ns}})
        informer = SharedInformer(client, CONFIGMAPS, namespace=ns, check_mutations=True)
        informer.add_indexer("color", lambda obj: [(obj["metadata"].get("labels") or {}).get("color", "none")])
        events: list[tuple[str, str]] = []
        informer.add_handler(
            on_add=lambda o: events.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: events.append(("update", new["metadata"]["name"])),
            on_delete=lambda o: events.append(("delete", o["metadata"]["name"])),
        )
        task = asyncio.create_task(informer.run())
        try:
            await asyncio.wait_for(informer.has_synced.wait(), timeout=30)
            assert informer.get(f"{ns}/before") is not None
            await client.create(CONFIGMAPS, {"metadata": {"name": "red", "namespace": ns, "labels": {"color": "red"}}})
            await eventually(lambda: informer.by_index("color", "red"), "the indexed object")
            await client.patch(CONFIGMAPS, "red", {"metadata": {"labels": {"color": "blue"}}}, namespace=ns)
            await eventually(
                lambda: informer.by_index("color", "blue") and not informer.by_index("color", "red"),
                "the index to follow the label",
            )
            await client.delete(CONFIGMAPS, "before", namespace=ns)
            await eventually(lambda: informer.get(f"{ns}/before") is None, "the deletion")
            assert events == [("add", "before"), ("add", "red"), ("update", "red"), ("delete", "before")]
            informer.verify_all()
            late: list[str] = []
            informer.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
            assert late == ["red"], "a late handler gets the cached objects replayed"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(dev_cluster, scenario)


def test_factory_gives_one_informer_per_resource(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        factory = InformerFactory(client)
        assert factory.informer(CONFIGMAPS) is factory.informer(CONFIGMAPS)
        assert factory.informer(CONFIGMAPS) is not factory.informer(EVENTS)
        task = asyncio.create_task(factory.run())
        try:
            await asyncio.wait_for(factory.wait_for_sync(), timeout=30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(dev_cluster, scenario)


def test_only_one_elector_leads_and_a_released_lease_passes_at_once(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        leading: list[str] = []
        stop_first = asyncio.Event()

        def elector(identity: str) -> LeaderElector:
            return LeaderElector(
                client,
                lease_name="test-lease",
                namespace=ns,
                identity=identity,
                lease_duration=30,
                renew_deadline=5,
                retry_period=0.5,
            )

        async def lead_as(identity: str, until: asyncio.Event | None) -> None:
            leading.append(identity)
            await (until.wait() if until else asyncio.Event().wait())

        first, second = elector("one"), elector("two")
        one = asyncio.create_task(first.run(lambda: lead_as("one", stop_first)))
        await eventually(lambda: leading == ["one"], "the first elector to lead")
        two = asyncio.create_task(second.run(lambda: lead_as("two", None)))
        await asyncio.sleep(2)
        assert leading == ["one"] and not second.is_leader
        stop_first.set()  # the leader's work ends: it releases the Lease (no 30 s expiry wait)
        await asyncio.wait_for(one, timeout=10)
        await eventually(lambda: leading == ["one", "two"], "the second elector to take over")
        lease = await client.get(LEASES, "test-lease", namespace=ns)
        assert lease["spec"]["holderIdentity"] == "two" and lease["spec"]["leaseTransitions"] >= 1
        two.cancel()
        await asyncio.gather(two, return_exceptions=True)

    run(dev_cluster, scenario)


def test_event_recorder_counts_repeats_on_one_event(dev_cluster: DevCluster) -> None:
    async def scenario(client: ApiClient, ns: str) -> None:
        subject = await client.create(CONFIGMAPS, {"metadata": {"name": "subject", "namespace": ns}})
        recorder = EventRecorder(client, component="test-recorder", host="here")
        for _ in range(3):
            await recorder.record(subject, "Normal", "Poked", "poked it")
        await recorder.record(subject, "Warning", "Broke", "it broke")
        events, _ = await client.list(EVENTS, namespace=ns)
        by_reason = {e["reason"]: e for e in events}
        assert by_reason["Poked"]["count"] == 3 and by_reason["Broke"]["count"] == 1
        poked = by_reason["Poked"]
        assert poked["involvedObject"]["uid"] == subject["metadata"]["uid"]
        assert poked["source"] == {"component": "test-recorder", "host": "here"}

    run(dev_cluster, scenario)
