"""API server throughput and latency on a fresh 3-master dev cluster, against raw etcd in the same run.

Starts its own cluster (temporary PROVISIONER_HOME), then measures through HAProxy with the admin
client certificate (aiohttp as the load client): ConfigMap creates (~1 KiB payload, 64 concurrent
clients), gets, one list over 10,000 objects, and watch delivery latency to 100 watchers (from the
moment a create is sent until each watcher has the event). As the baseline, the same number of
compare-and-swap create transactions with the same payload and concurrency go straight to etcd
(aetcd over the same mutual TLS). Prints numbers, asserts nothing; the last line is one JSON object.
The load client shares the host's cores with the cluster, so absolute numbers are a floor.

    .venv/bin/python bench/apiserver.py [--objects 10000] [--concurrency 64] [--watchers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aetcd import rpc

from provisioner.controlplane.store.etcd import TlsEtcdClient
from provisioner.dev import dev_down, dev_up
from provisioner.dev.layout import ETCD_CLIENT_PORT

NAMESPACE = "bench"
WATCH_NAMESPACE = "bench-watch"


@dataclass(frozen=True)
class Target:
    server: str
    ca_file: Path
    admin_cert: Path
    admin_key: Path
    etcd_endpoints: tuple[str, ...]
    etcd_cert: Path
    etcd_key: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return context


@dataclass(frozen=True)
class Timed:
    seconds: float
    latencies: list[float]  # seconds, one per successful operation
    errors: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def configmap(name: str, payload: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"payload": payload}}


async def run_concurrently(count: int, concurrency: int, operation: Callable[[int], Awaitable[bool]]) -> Timed:
    """Run `operation(0..count-1)` on `concurrency` workers; each returns whether it succeeded."""
    latencies: list[float] = []
    errors = 0
    next_index = iter(range(count))

    async def worker() -> None:
        nonlocal errors
        for i in next_index:
            started = time.perf_counter()
            if await operation(i):
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Timed(seconds=time.perf_counter() - started, latencies=latencies, errors=errors)


async def ensure_namespace(session: aiohttp.ClientSession, server: str, name: str) -> None:
    async with session.post(
        f"{server}/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    ) as r:
        if r.status not in (201, 409):
            raise RuntimeError(f"creating namespace {name}: HTTP {r.status} {await r.text()}")


async def bench_creates(
    session: aiohttp.ClientSession, server: str, *, count: int, concurrency: int, payload: str
) -> Timed:
    url = f"{server}/api/v1/namespaces/{NAMESPACE}/configmaps"

    async def create(i: int) -> bool:
        async with session.post(url, json=configmap(f"cm-{i}", payload)) as r:
            await r.read()
            return r.status == 201

    return await run_concurrently(count, concurrency, create)


async def bench_gets(
    session: aiohttp.ClientSession, server: str, *, count: int, objects: int, concurrency: int
) -> Timed:
    url = f"{server}/api/v1/namespaces/{NAMESPACE}/configmaps"

    async def get(i: int) -> bool:
        async with session.get(f"{url}/cm-{(i * 7919) % objects}") as r:
            await r.read()
            return r.status == 200

    return await run_concurrently(count, concurrency, get)


async def bench_list(session: aiohttp.ClientSession, server: str, *, rounds: int) -> tuple[float, int]:
    """Median seconds of a full (unpaged) list, and how many items it returned."""
    times, items = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(f"{server}/api/v1/namespaces/{NAMESPACE}/configmaps") as r:
            body = await r.json()
        times.append(time.perf_counter() - started)
        items = len(body["items"])
    return statistics.median(times), items


async def bench_watch(
    session: aiohttp.ClientSession, server: str, *, watchers: int, events: int, payload: str
) -> list[float]:
    """Seconds from sending each create to its ADDED event at each watcher."""
    url = f"{server}/api/v1/namespaces/{WATCH_NAMESPACE}/configmaps"
    async with session.get(url) as r:
        resource_version = (await r.json())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = asyncio.Semaphore(0)

    async def watch() -> None:
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "false"}
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
            ready.release()
            seen = 0
            async for line in r.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                name = event["object"]["metadata"].get("name", "")
                if event["type"] == "ADDED" and name in sent:
                    delays.append(time.perf_counter() - sent[name])
                    seen += 1
                    if seen == events:
                        return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    try:
        for _ in range(watchers):
            await ready.acquire()
        await asyncio.sleep(0.5)  # let every server register its watch before the first write
        for i in range(events):
            name = f"w-{i}"
            sent[name] = time.perf_counter()
            async with session.post(url, json=configmap(name, payload)) as r:
                await r.read()
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return delays


async def bench_etcd(target: Target, *, count: int, concurrency: int, payload: str) -> Timed:
    """The same CAS create the store performs (create_revision == 0 -> put), straight to etcd."""
    client = TlsEtcdClient(
        endpoints=target.etcd_endpoints, ca_file=target.ca_file, cert_file=target.etcd_cert, key_file=target.etcd_key
    )
    await client.connect()
    run = uuid.uuid4().hex[:8]

    async def txn(i: int) -> bool:
        key = f"/bench-raw/{run}/cm-{i}".encode()
        value = json.dumps(configmap(f"cm-{i}", payload)).encode()
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )
        response = await client.kvstub.Txn(request, timeout=10)
        return bool(response.succeeded)

    try:
        return await run_concurrently(count, concurrency, txn)
    finally:
        await client.close()


async def measure(target: Target, args: argparse.Namespace) -> dict[str, float]:
    payload = "x" * args.payload_bytes
    connector = aiohttp.TCPConnector(limit=0, ssl=target.ssl_context())
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for namespace in (NAMESPACE, WATCH_NAMESPACE):
            await ensure_namespace(session, target.server, namespace)
        etcd = await bench_etcd(target, count=args.objects, concurrency=args.concurrency, payload=payload)
        print(
            f"etcd CAS txns:  {etcd.rate:8.0f}/s  p50 {etcd.percentile_ms(50):.1f} ms  "
            f"p99 {etcd.percentile_ms(99):.1f} ms  errors {etcd.errors}",
            flush=True,
        )
        creates = await bench_creates(
            session, target.server, count=args.objects, concurrency=args.concurrency, payload=payload
        )
        print(
            f"creates:        {creates.rate:8.0f}/s  p50 {creates.percentile_ms(50):.1f} ms  "
            f"p99 {creates.percentile_ms(99):.1f} ms  errors {creates.errors}",
            flush=True,
        )
        gets = await bench_gets(
            session, target.server, count=args.objects, objects=args.objects, concurrency=args.concurrency
        )
        print(
            f"gets:           {gets.rate:8.0f}/s  p50 {gets.percentile_ms(50):.1f} ms  "
            f"p99 {gets.percentile_ms(99):.1f} ms  errors {gets.errors}",
            flush=True,
        )
        list_seconds, items = await bench_list(session, target.server, rounds=3)
        print(f"list:           {list_seconds * 1000:8.0f} ms for {items} objects (median of 3)", flush=True)
        delays = await bench_watch(
            session, target.server, watchers=args.watchers, events=args.watch_events, payload=payload
        )
        watch_p50, watch_p99 = percentile(delays, 50) * 1000, percentile(delays, 99) * 1000
        print(
            f"watch delivery: p50 {watch_p50:.1f} ms  p99 {watch_p99:.1f} ms  "
            f"({len(delays)} deliveries to {args.watchers} watchers)",
            flush=True,
        )
    return {
        "creates_per_s": round(creates.rate, 1),
        "create_p99_ms": round(creates.percentile_ms(99), 2),
        "gets_per_s": round(gets.rate, 1),
        "list_10k_ms": round(list_seconds * 1000, 1),
        "watch_p50_ms": round(watch_p50, 2),
        "watch_p99_ms": round(watch_p99, 2),
        "etcd_txn_per_s": round(etcd.rate, 1),
        "create_vs_etcd_ratio": round(creates.rate / etcd.rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--objects", type=int, default=10_000, help="creates (and list size), gets, etcd txns")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-events", type=int, default=200)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="provisioner-bench-"))
    name = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        started = time.perf_counter()
        report = dev_up(name=name, masters=args.masters, home=home)
        print(
            f"cluster {name}: {args.masters} masters up in {time.perf_counter() - started:.1f}s, "
            f"server {report.server}",
            flush=True,
        )
        pki = home / name / "pki"
        target = Target(
            server=report.server,
            ca_file=pki / "ca.crt",
            admin_cert=pki / "admin.crt",
            admin_key=pki / "admin.key",
            etcd_endpoints=tuple(f"{a}:{ETCD_CLIENT_PORT}" for a in report.layout.master_addresses),
            etcd_cert=pki / "apiserver-etcd-client.crt",
            etcd_key=pki / "apiserver-etcd-client.key",
        )
        results = asyncio.run(measure(target, args))
    finally:
        if (home / name / "cluster.json").exists():
            dev_down(name=name, purge=True, home=home)
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
