"""The etcd store against the dev cluster's real 3-member etcd over mutual TLS, under a key prefix of its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import DevCluster

from provisioner.controlplane.store import (
    AlreadyExists,
    Compacted,
    Conflict,
    KeyNotFound,
    Store,
    TlsEtcdClient,
    WatchCache,
)

pytestmark = pytest.mark.integration


T = f"/store-test-{uuid.uuid4().hex[:8]}"  # every key of this module lives under it


def _store(c: DevCluster) -> Store:
    return Store(TlsEtcdClient(endpoints=c.etcd_endpoints, ca_file=c.ca_file, cert_file=c.etcd_client_cert,
                               key_file=c.etcd_client_key))


def test_create_get_update_delete_with_compare_and_swap(dev_cluster: DevCluster) -> None:
    async def scenario() -> None:
        store = _store(dev_cluster)
        rev = await store.create(f"{T}/crud/a", {"v": 1})
        with pytest.raises(AlreadyExists):
            await store.create(f"{T}/crud/a", {"v": 2})
        assert await store.get(f"{T}/crud/a") == ({"v": 1}, rev)
        rev2 = await store.update(f"{T}/crud/a", {"v": 3}, expected_rev=rev)
        with pytest.raises(Conflict) as stale:
            await store.update(f"{T}/crud/a", {"v": 4}, expected_rev=rev)
        assert stale.value.current_rev == rev2
        last, deleted_at = await store.delete(f"{T}/crud/a", expected_rev=rev2)
        assert last == {"v": 3} and deleted_at > rev2
        assert await store.get(f"{T}/crud/a") is None
        with pytest.raises(KeyNotFound):
            await store.delete(f"{T}/crud/a")
        await store.close()

    asyncio.run(scenario())


def test_list_pages_at_one_revision(dev_cluster: DevCluster) -> None:
    async def scenario() -> None:
        store = _store(dev_cluster)
        for i in range(5):
            await store.create(f"{T}/list/{i}", {"i": i})
        first, rev, more = await store.list(f"{T}/list/", limit=2)
        assert [e.value["i"] for e in first] == [0, 1] and more
        await store.create(f"{T}/list/9", {"i": 9})
        rest, rev_again, more = await store.list(f"{T}/list/", start_after=first[-1].key, revision=rev)
        assert [e.value["i"] for e in rest] == [2, 3, 4] and not more and rev_again >= rev
        await store.close()

    asyncio.run(scenario())


def test_watch_resumes_from_revision_and_reports_compaction(dev_cluster: DevCluster) -> None:
    async def scenario() -> None:
        store = _store(dev_cluster)
        r1 = await store.create(f"{T}/watch/a", {"n": 1})
        r2 = await store.update(f"{T}/watch/a", {"n": 2}, expected_rev=r1)
        _, r3 = await store.delete(f"{T}/watch/a")
        seen = []
        async for ev in store.watch(f"{T}/watch/", start_revision=r2):
            seen.append((ev.type, ev.rev, ev.value, ev.prev))
            if len(seen) == 2:
                break
        assert seen == [("PUT", r2, {"n": 2}, {"n": 1}), ("DELETE", r3, None, {"n": 2})]
        await store.compact(r3)
        with pytest.raises(Compacted):
            async for _ in store.watch(f"{T}/watch/", start_revision=r1):
                pass
        await store.close()

    asyncio.run(scenario())


def test_watch_cache_fans_out_in_order_and_replays_recent_events(dev_cluster: DevCluster) -> None:
    async def scenario() -> None:
        store = _store(dev_cluster)
        cache = WatchCache(store, prefix=f"{T}/")
        runner = asyncio.create_task(cache.run())
        await cache.wait_ready()
        start = cache.revision + 1
        revs = [await store.create(f"{T}/fan/{i}", {"i": i}) for i in range(20)]

        async def collect(prefix: str) -> list[int]:
            got = []
            async for ev in cache.events(prefix, start_revision=start):
                got.append(ev.rev)
                if len(got) == 20:
                    return got
            return got

        results = await asyncio.wait_for(asyncio.gather(*(collect(f"{T}/fan/") for _ in range(50))), 30)
        assert all(r == revs for r in results)
        runner.cancel()
        await store.close()

    asyncio.run(scenario())


def test_writes_continue_when_one_member_stops(dev_cluster: DevCluster) -> None:
    async def writes(n: int, tag: str) -> list[str]:
        store = _store(dev_cluster)
        keys = [f"{T}/failover/{tag}/{i}" for i in range(n)]
        for k in keys:
            await store.create(k, {"k": k})
        await store.close()
        return keys

    asyncio.run(writes(5, "before"))
    dev_cluster.kill("etcd-0")  # the first address in the target: the client must move on
    try:
        keys = asyncio.run(writes(20, "during"))
    finally:
        dev_cluster.restart()

    async def check() -> None:
        store = _store(dev_cluster)
        entries, _, _ = await store.list(f"{T}/failover/during/")
        assert sorted(e.key for e in entries) == sorted(keys)
        await store.close()

    asyncio.run(check())
