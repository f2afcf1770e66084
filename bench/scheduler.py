"""Scheduler throughput and latency against the real API server, with the plain binding rate as the floor.

Starts its own dev cluster (temporary PROVISIONER_HOME, 1 master by default), registers hollow nodes
from this one process (each a real Node object with a heartbeat Lease renewed every 10 s over its own
connection pool, as agents do, but running nothing), then measures, in order:

1. floor: `--pods` pre-created pods that the scheduler ignores (schedulerName bench-floor) bound with
   plain `pods/binding` writes, round-robin over the nodes, `--concurrency` in flight;
2. throughput: `--pods` pre-created pending pods, then the real scheduler process is started
   (`python -m provisioner.controlplane.scheduler`); pods_per_s counts from the first to the last
   binding seen on a watch, so start-up and the initial list are excluded, as in the floor;
3. latency: with the scheduler idle, `--latency-pods` pods created at `--latency-rate` per second;
   p50/p99 from each create's answer until the watch shows the pod bound.

Prints numbers, asserts nothing; the last line is one JSON object.

    .venv/bin/python bench/scheduler.py [--nodes 1000] [--pods 10000] [--concurrency 64] [--masters 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from _common import percentile, throwaway_dev_cluster

from provisioner.controlplane.agent.node import HostInfo, NodeReporter
from provisioner.controlplane.client import ApiClient, ApiStatusError, resource

PODS, NAMESPACES = resource("pods"), resource("namespaces")
NAMESPACE = "bench-sched"
HOLLOW_HOST = HostInfo(cpus=32, memory=64 * 2**30, kernel="hollow", os_image="hollow", machine_id="hollow")


def _pod(name: str, *, scheduler: str = "default-scheduler") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "sched"}},
            "spec": {"schedulerName": scheduler, "containers": [{
                "name": "c", "image": "busybox", "command": ["sleep", "1"],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def _bounded(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()()

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


async def _retrying(call: Callable[[], Awaitable[Any]]) -> None:
    """A write that survives a slow moment of a shared host: retried on timeouts; 409 means it landed before."""
    for attempt in range(5):
        try:
            await call()
            return
        except ApiStatusError as exc:
            if exc.code == 409:
                return
            raise
        except (TimeoutError, aiohttp.ClientError):
            if attempt == 4:
                raise
            await asyncio.sleep(1)


class BindWatch:
    """Records when each pod of the bench namespace is first seen bound."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.bound: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self, resource_version: str) -> None:
        async for type_, pod in self.client.watch(PODS, namespace=NAMESPACE, resource_version=resource_version):
            if type_ in ("ADDED", "MODIFIED") and pod["spec"].get("nodeName"):
                self.bound.setdefault(pod["metadata"]["name"], time.monotonic())
                self.changed.set()

    async def until(self, names: set[str]) -> None:
        while not names <= self.bound.keys():
            self.changed.clear()
            await self.changed.wait()


async def _create_all(client: ApiClient, names: list[str], *, scheduler: str, concurrency: int) -> None:
    async def create(name: str) -> None:
        await _retrying(lambda: client.create(PODS, _pod(name, scheduler=scheduler)))

    await _bounded(concurrency, [lambda n=n: create(n) for n in names])


async def bench(args: argparse.Namespace, kubeconfig: Path) -> dict[str, Any]:
    async with (
        ApiClient.from_kubeconfig(kubeconfig) as client,
        ApiClient.from_kubeconfig(kubeconfig) as beats,
        ApiClient.from_kubeconfig(kubeconfig) as watcher,
    ):
        await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        nodes = [NodeReporter(beats, f"hollow-{i:04d}", f"127.254.{i // 250}.{i % 250 + 1}", HOLLOW_HOST)
                 for i in range(args.nodes)]
        started = time.monotonic()
        await _bounded(args.concurrency, [n.register for n in nodes] + [n.renew_lease for n in nodes])
        print(f"registered {args.nodes} hollow nodes with Leases in {time.monotonic() - started:.1f}s", flush=True)

        async def heartbeat(node: NodeReporter) -> None:
            await asyncio.sleep(random.uniform(0, node.lease_interval))  # spread renewals as real agents are
            await node.heartbeat()

        async with asyncio.TaskGroup() as group:
            heartbeats = [group.create_task(heartbeat(n)) for n in nodes]
            _, rv = await client.list(PODS, namespace=NAMESPACE)
            watch = BindWatch(watcher)
            watching = group.create_task(watch.run(rv))

            floor_names = [f"floor-{i}" for i in range(args.pods)]
            await _create_all(client, floor_names, scheduler="bench-floor", concurrency=args.concurrency)
            started = time.monotonic()
            await _bounded(args.concurrency, [
                lambda i=i, n=n: _retrying(lambda: client.bind(namespace=NAMESPACE, pod_name=n,
                                                               node_name=nodes[i % len(nodes)].node_name))
                for i, n in enumerate(floor_names)])
            floor_s = time.monotonic() - started
            floor = args.pods / floor_s
            print(f"floor: {args.pods} plain bindings in {floor_s:.1f}s = {floor:.0f}/s", flush=True)

            names = [f"pod-{i}" for i in range(args.pods)]
            await _create_all(client, names, scheduler="default-scheduler", concurrency=args.concurrency)
            print(f"created {args.pods} pending pods; starting the scheduler", flush=True)
            scheduler = subprocess.Popen(
                [sys.executable, "-m", "provisioner.controlplane.scheduler", "--kubeconfig", str(kubeconfig),
                 "--no-leader-elect", "--log-level", "WARNING"], stdin=subprocess.DEVNULL)
            try:
                await watch.until(set(names))
                times = [watch.bound[n] for n in names]
                span = max(times) - min(times)
                pods_per_s = args.pods / span if span else float("inf")
                print(f"scheduler: {args.pods} pods bound in {span:.1f}s = {pods_per_s:.0f} pods/s "
                      f"({pods_per_s / floor:.2f} of the floor)", flush=True)

                latencies: list[float] = []

                async def timed(name: str) -> None:
                    await client.create(PODS, _pod(name))
                    created = time.monotonic()
                    await watch.until({name})
                    latencies.append(watch.bound[name] - created)

                async with asyncio.TaskGroup() as paced:
                    for i in range(args.latency_pods):
                        paced.create_task(timed(f"lat-{i}"))
                        await asyncio.sleep(1 / args.latency_rate)
            finally:
                scheduler.terminate()
                scheduler.wait(30)
            p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            print(f"latency over {len(latencies)} pods at {args.latency_rate}/s: p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms (mean {statistics.fmean(latencies) * 1000:.1f} ms)", flush=True)
            for task in (*heartbeats, watching):
                task.cancel()
    return {"nodes": args.nodes, "pods": args.pods, "concurrency": args.concurrency, "masters": args.masters,
            "pods_per_s": round(pods_per_s, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
            "bind_floor_per_s": round(floor, 1), "ratio_to_floor": round(pods_per_s / floor, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--masters", type=int, default=1, choices=(1, 3, 5))
    parser.add_argument("--latency-pods", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=50.0, help="pods created per second")
    args = parser.parse_args()
    with throwaway_dev_cluster(prefix="bench-scheduler-", masters=args.masters,
                               report=lambda line: print(line, flush=True)) as (report, _, _):
        result = asyncio.run(bench(args, report.kubeconfig))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
