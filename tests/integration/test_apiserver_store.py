"""The etcd store against a real 3-member etcd cluster over mutual TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from _apiserver_harness import Cluster, cluster

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


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("store"), ("127.0.0.31", "127.0.0.32", "127.0.0.33")) as c:
        yield c


def _store(c: Cluster) -> Store:
    return Store(TlsEtcdClient(endpoints=[m.endpoint for m in c.members], ca_file=c.ca.cert_file,
                               cert_file=c.etcd_client.cert_file, key_file=c.etcd_client.key_file))


def test_create_get_update_delete_with_compare_and_swap(etcd: Cluster) -> None:
    async def scenario() -> None:
        store = _store(etcd)
        rev = await store.create("/t/crud/a", {"v": 1})
        with pytest.raises(AlreadyExists):
            await store.create("/t/crud/a", {"v": 2})
        assert await store.get("/t/crud/a") == ({"v": 1}, rev)
        rev2 = await store.update("/t/crud/a", {"v": 3}, expected_rev=rev)
        with pytest.raises(Conflict) as stale:
            await store.update("/t/crud/a", {"v": 4}, expected_rev=rev)
        assert stale.value.current_rev == rev2
        assert await store.delete("/t/crud/a", expected_rev=rev2) == ({"v": 3}, rev2 + 1)
        assert await store.get("/t/crud/a") is None
        with pytest.raises(KeyNotFound):
            await store.delete("/t/crud/a")
        await store.close()

    asyncio.run(scenario())


def test_list_pages_at_one_revision(etcd: Cluster) -> None:
    async def scenario() -> None:
        store = _store(etcd)
        for i in range(5):
            await store.create(f"/t/list/{i}", {"i": i})
        first, rev, more = await store.list("/t/list/", limit=2)
        assert [e.value["i"] for e in first] == [0, 1] and more
        await store.create("/t/list/9", {"i": 9})
        rest, rev_again, more = await store.list("/t/list/", start_after=first[-1].key, revision=rev)
        assert [e.value["i"] for e in rest] == [2, 3, 4] and not more and rev_again >= rev
        await store.close()

    asyncio.run(scenario())


def test_watch_resumes_from_revision_and_reports_compaction(etcd: Cluster) -> None:
    async def scenario() -> None:
        store = _store(etcd)
        r1 = await store.create("/t/watch/a", {"n": 1})
        r2 = await store.update("/t/watch/a", {"n": 2}, expected_rev=r1)
        _, r3 = await store.delete("/t/watch/a")
        seen = []
        async for ev in store.watch("/t/watch/", start_revision=r2):
            seen.append((ev.type, ev.rev, ev.value, ev.prev))
            if len(seen) == 2:
                break
        assert seen == [("PUT", r2, {"n": 2}, {"n": 1}), ("DELETE", r3, None, {"n": 2})]
        await store.compact(r3)
        with pytest.raises(Compacted):
            async for _ in store.watch("/t/watch/", start_revision=r1):
                pass
        await store.close()

    asyncio.run(scenario())


def test_watch_cache_fans_out_in_order_and_replays_recent_events(etcd: Cluster) -> None:
    async def scenario() -> None:
        store = _store(etcd)
        cache = WatchCache(store, prefix="/t/")
        runner = asyncio.create_task(cache.run())
        await cache.wait_ready()
        start = cache.revision + 1
        revs = [await store.create(f"/t/fan/{i}", {"i": i}) for i in range(20)]

        async def collect(prefix: str) -> list[int]:
            got = []
            async for ev in cache.events(prefix, start_revision=start):
                got.append(ev.rev)
                if len(got) == 20:
                    return got
            return got

        results = await asyncio.wait_for(asyncio.gather(*(collect("/t/fan/") for _ in range(50))), 30)
        assert all(r == revs for r in results)
        runner.cancel()
        await store.close()

    asyncio.run(scenario())


def test_writes_continue_when_one_member_stops(etcd: Cluster) -> None:
    async def writes(n: int, tag: str) -> list[str]:
        store = _store(etcd)
        keys = [f"/t/failover/{tag}/{i}" for i in range(n)]
        for k in keys:
            await store.create(k, {"k": k})
        await store.close()
        return keys

    asyncio.run(writes(5, "before"))
    victim = etcd.members[0]  # the first address in the target: the client must move on
    etcd.stop_etcd(victim)
    try:
        keys = asyncio.run(writes(20, "during"))
    finally:
        etcd.start_etcd(victim)

    async def check() -> None:
        store = _store(etcd)
        entries, _, _ = await store.list("/t/failover/during/")
        assert sorted(e.key for e in entries) == sorted(keys)
        await store.close()

    asyncio.run(check())
