"""Pod startup latency (create -> Running) on real agents, scheduled by the real scheduler.

Starts its own dev cluster (temporary PROVISIONER_HOME, 1 master by default), one scheduler and
`--agents` agents on their own loopback addresses, then creates `--pods` pods (one `sleep` container
each) at `--rate` per second and measures, per pod, from the create's answer until a watch shows
`status.phase=Running` (scheduling, binding, the agent's start of the process and its status write).
Pods are deleted and every process stopped at the end. Prints numbers, asserts nothing; the last line
is one JSON object.

    .venv/bin/python bench/podstartup.py [--pods 100] [--rate 10] [--agents 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import percentile, throwaway_dev_cluster

from provisioner.controlplane.agent.cgroups import detect_cgroups
from provisioner.controlplane.agent.runtime import reap
from provisioner.controlplane.client import ApiClient, resource

PODS, NAMESPACES, NODES = resource("pods"), resource("namespaces"), resource("nodes")
NAMESPACE = "bench-startup"


async def bench(args: argparse.Namespace, kubeconfig: Path) -> dict[str, Any]:
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        while len((await client.list(NODES))[0]) < args.agents:
            await asyncio.sleep(0.2)
        _, rv = await client.list(PODS, namespace=NAMESPACE)
        running: dict[str, float] = {}
        changed = asyncio.Event()

        async def watch() -> None:
            async for type_, pod in client.watch(PODS, namespace=NAMESPACE, resource_version=rv):
                if type_ != "BOOKMARK" and (pod.get("status") or {}).get("phase") == "Running":
                    running.setdefault(pod["metadata"]["name"], time.monotonic())
                    changed.set()

        latencies: list[float] = []

        async def start_one(name: str) -> None:
            pod = {"metadata": {"name": name, "namespace": NAMESPACE},
                   "spec": {"terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}
            await client.create(PODS, pod)
            created = time.monotonic()
            while name not in running:
                changed.clear()
                await changed.wait()
            latencies.append(running[name] - created)

        async with asyncio.TaskGroup() as group:
            watching = group.create_task(watch())
            async with asyncio.TaskGroup() as paced:
                for i in range(args.pods):
                    paced.create_task(start_one(f"pod-{i}"))
                    await asyncio.sleep(1 / args.rate)
            watching.cancel()
        for i in range(args.pods):
            await client.delete(PODS, f"pod-{i}", namespace=NAMESPACE, grace_period_seconds=1)
        while (await client.list(PODS, namespace=NAMESPACE))[0]:
            await asyncio.sleep(0.5)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"{len(latencies)} pods at {args.rate}/s on {args.agents} agents: create->Running p50 {p50:.3f}s, "
          f"p99 {p99:.3f}s, max {max(latencies):.3f}s", flush=True)
    return {"pods": args.pods, "rate": args.rate, "agents": args.agents, "p50_s": round(p50, 3),
            "p99_s": round(p99, 3), "max_s": round(max(latencies), 3)}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="pods created per second")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--masters", type=int, default=1, choices=(1, 3, 5))
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    roots: list[Path] = []
    with throwaway_dev_cluster(prefix="bench-podstartup-", masters=args.masters) as (report, home, _):
        try:
            kubeconfig = str(report.kubeconfig)
            log = (home / "components.log").open("ab")
            argv = [[sys.executable, "-m", "provisioner.controlplane.scheduler", "--kubeconfig", kubeconfig,
                     "--no-leader-elect"]]
            for i in range(args.agents):
                roots.append(home / f"node-{i}")
                argv.append([sys.executable, "-m", "provisioner.controlplane.agent", "--kubeconfig", kubeconfig,
                             "--node-name", f"node-{i}", "--address", f"127.{report.layout.block}.2.{201 + i}",
                             "--root", str(roots[-1])])
            for command in argv:
                processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                  start_new_session=True))
            result = asyncio.run(bench(args, report.kubeconfig))
        finally:
            for process in processes:
                _stop(process)
            for root in roots:  # anything the agents had no time to stop
                if root.exists():
                    reap(root, cgroups=detect_cgroups())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
