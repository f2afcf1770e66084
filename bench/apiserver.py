"""API server throughput and latency on a fresh 3-master dev cluster, against raw etcd in the same run.

Starts its own cluster (temporary PROVISIONER_HOME), then measures through HAProxy with the admin
client certificate (aiohttp as the load client): ConfigMap creates (~1 KiB payload, 64 concurrent
clients), gets, one list over 10,000 objects, and watch delivery latency to 100 watchers (from the
moment a create is sent until each watcher has the event). As the baseline, the same number of
compare-and-swap create transactions with the same payload and concurrency go straight to etcd
(aetcd over the same mutual TLS), once alone and once while one watch per master follows them (what
the API servers' watch caches cost etcd). Creates are also measured straight to the API servers (the
clients split evenly, each pinned to one server, no HAProxy) to show what the load-balancer hop
costs. For every phase it reads the CPU time
each part spent (API servers, etcd members, HAProxy from /proc; the load client from its own
process), so the report says where the time goes. Prints numbers, asserts nothing; the last line
is one JSON object. The load client shares the host's cores with the cluster, so absolute numbers
are a floor.

    .venv/bin/python bench/apiserver.py [--objects 10000] [--direct-objects 3000] [--concurrency 64]
                                        [--watchers 100] [--idle-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _common import throwaway_dev_cluster
from aetcd import rpc

from provisioner.controlplane.store import Store, TlsEtcdClient
from provisioner.dev import dev_status
from provisioner.dev.layout import APISERVER_PORT, ETCD_CLIENT_PORT

NAMESPACE = "bench"
DIRECT_NAMESPACE = "bench-direct"
WATCH_NAMESPACE = "bench-watch"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    server: str
    apiservers: tuple[str, ...]  # each API server's own URL, for the direct (no HAProxy) run
    ca_file: Path
    admin_cert: Path
    admin_key: Path
    etcd_endpoints: tuple[str, ...]
    etcd_cert: Path
    etcd_key: Path
    processes: tuple[tuple[str, int], ...]  # (part: "apiserver", "etcd" or "haproxy", PID) of every process

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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def cpu_sample(target: Target) -> dict[str, float]:
    """CPU seconds used so far by each part of the cluster, and by this (client) process."""
    parts = {"client": time.process_time()}
    for part, pid in target.processes:
        parts[part] = parts.get(part, 0.0) + _cpu_seconds(pid)
    return parts


def cpu_ms_per_op(before: dict[str, float], after: dict[str, float], ops: int) -> dict[str, float]:
    return {part: round((after[part] - before[part]) * 1000 / max(ops, 1), 3) for part in after}


def describe_cpu(per_op: dict[str, float]) -> str:
    return "cpu ms/op: " + "  ".join(f"{part} {ms:.2f}" for part, ms in sorted(per_op.items()))


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
    session: aiohttp.ClientSession, servers: tuple[str, ...], *, namespace: str, count: int, concurrency: int,
    payload: str,
) -> Timed:
    """Creates through each of `servers` at once, the clients split evenly and each pinned to one server.

    One server is the HAProxy endpoint; several are the API servers themselves, with each client
    keeping to one of them as HAProxy keeps a client's connection on one backend.
    """

    def creates_via(server: str, offset: int) -> Callable[[int], Awaitable[bool]]:
        url = f"{server}/api/v1/namespaces/{namespace}/configmaps"

        async def create(i: int) -> bool:
            async with session.post(url, json=configmap(f"cm-{offset + i}", payload)) as r:
                await r.read()
                return r.status == 201

        return create

    share, clients = count // len(servers), max(1, concurrency // len(servers))
    started = time.perf_counter()
    runs = await asyncio.gather(*(run_concurrently(share, clients, creates_via(server, n * share))
                                  for n, server in enumerate(servers)))
    return Timed(seconds=time.perf_counter() - started, latencies=[x for run in runs for x in run.latencies],
                 errors=sum(run.errors for run in runs))


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


def etcd_client(target: Target) -> TlsEtcdClient:
    return TlsEtcdClient(
        endpoints=target.etcd_endpoints, ca_file=target.ca_file, cert_file=target.etcd_cert, key_file=target.etcd_key
    )


async def follow(store: Store, prefix: str) -> None:
    """Consume every change under `prefix`, as an API server's watch cache does (prev_kv included)."""
    async for _ in store.watch(prefix, start_revision=await store.current_revision() + 1):
        pass


async def bench_etcd(target: Target, *, count: int, concurrency: int, payload: str, watchers: int) -> Timed:
    """The same CAS create the store performs (create_revision == 0 -> put), straight to etcd.

    With `watchers`, that many separate connections watch the keys while they are written, the way
    each API server's watch cache follows every write: this isolates what the watches cost etcd.
    """
    client = etcd_client(target)
    await client.connect()
    run = uuid.uuid4().hex[:8]
    stores = [Store(etcd_client(target)) for _ in range(watchers)]
    following = [asyncio.create_task(follow(store, f"/bench-raw/{run}/")) for store in stores]

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
        await asyncio.sleep(0.5 if watchers else 0)  # let the watches register
        return await run_concurrently(count, concurrency, txn)
    finally:
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        for store in stores:
            await store.close()
        await client.close()


async def measure(target: Target, args: argparse.Namespace) -> dict[str, object]:
    payload = "x" * args.payload_bytes
    cpu: dict[str, dict[str, float]] = {}
    connections = 0  # opened by the load client: with keep-alive, about one per concurrent client

    async def count_connection(*_: object) -> None:
        nonlocal connections
        connections += 1

    async def phase(label: str, ops: int, run: Awaitable[Timed]) -> Timed:
        opened, before = connections, cpu_sample(target)
        timed = await run
        cpu[label] = cpu_ms_per_op(before, cpu_sample(target), ops)
        print(
            f"{label + ':':<15} {timed.rate:8.0f}/s  p50 {timed.percentile_ms(50):.1f} ms  "
            f"p99 {timed.percentile_ms(99):.1f} ms  errors {timed.errors}  {describe_cpu(cpu[label])}  "
            f"connections opened {connections - opened}",
            flush=True,
        )
        return timed

    before = cpu_sample(target)
    await asyncio.sleep(args.idle_seconds)
    cpu["idle, per second"] = cpu_ms_per_op(before, cpu_sample(target), args.idle_seconds)
    print(f"idle cluster:   {describe_cpu(cpu['idle, per second'])} (ms of CPU per second)", flush=True)

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_end.append(count_connection)
    connector = aiohttp.TCPConnector(limit=0, ssl=target.ssl_context())
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120),
                                     trace_configs=[tracing]) as session:
        for namespace in (NAMESPACE, DIRECT_NAMESPACE, WATCH_NAMESPACE):
            await ensure_namespace(session, target.server, namespace)
        count, concurrency = args.objects, args.concurrency
        etcd = await phase("etcd CAS txns", count,
                           bench_etcd(target, count=count, concurrency=concurrency, payload=payload, watchers=0))
        watched = await phase(f"etcd + {len(target.apiservers)} watches", count, bench_etcd(
            target, count=count, concurrency=concurrency, payload=payload, watchers=len(target.apiservers)))
        creates = await phase("creates", count, bench_creates(
            session, (target.server,), namespace=NAMESPACE, count=count, concurrency=concurrency, payload=payload))
        direct = await phase("creates direct", args.direct_objects, bench_creates(
            session, target.apiservers, namespace=DIRECT_NAMESPACE, count=args.direct_objects,
            concurrency=concurrency, payload=payload))
        gets = await phase("gets", count, bench_gets(
            session, target.server, count=count, objects=count, concurrency=concurrency))
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
        "etcd_txn_watched_per_s": round(watched.rate, 1),
        "direct_creates_per_s": round(direct.rate, 1),
        "direct_create_p99_ms": round(direct.percentile_ms(99), 2),
        "cpu_ms_per_op": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--objects", type=int, default=10_000, help="creates (and list size), gets, etcd txns")
    parser.add_argument("--direct-objects", type=int, default=3_000, help="creates straight to the API servers")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-events", type=int, default=200)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    parser.add_argument("--idle-seconds", type=int, default=5, help="measure the idle cluster's background CPU")
    args = parser.parse_args()

    started = time.perf_counter()
    with throwaway_dev_cluster(prefix="provisioner-bench-", masters=args.masters) as (report, home, name):
        print(
            f"cluster {name}: {args.masters} masters up in {time.perf_counter() - started:.1f}s, "
            f"server {report.server}",
            flush=True,
        )
        pki = home / name / "pki"
        processes = tuple((p.name.rsplit("-", 1)[0], p.pid) for p in dev_status(name=name, home=home).processes
                          if p.pid is not None and p.name.startswith(("apiserver", "etcd", "haproxy")))
        target = Target(
            server=report.server,
            apiservers=tuple(f"https://{a}:{APISERVER_PORT}" for a in report.layout.master_addresses),
            ca_file=pki / "ca.crt",
            admin_cert=pki / "admin.crt",
            admin_key=pki / "admin.key",
            etcd_endpoints=tuple(f"{a}:{ETCD_CLIENT_PORT}" for a in report.layout.master_addresses),
            etcd_cert=pki / "apiserver-etcd-client.crt",
            etcd_key=pki / "apiserver-etcd-client.key",
            processes=processes,
        )
        results = asyncio.run(measure(target, args))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
