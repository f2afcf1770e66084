"""`python -m provisioner.controlplane.controllers --kubeconfig FILE --identity ID [--controllers a,b]`.

One process: it campaigns for the Lease kube-system/kube-controller-manager and, while leading, runs
the shared informers and the chosen loops as named tasks. Root tasks are the leader election and the
signal watch; when either ends the other is cancelled (a leader releases its Lease on the way out).
Exit status 0 after SIGTERM/SIGINT, 1 when leadership was lost or a loop failed, so a supervisor
restarts the process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from provisioner.controlplane.client import ApiClient, EventRecorder, InformerFactory, LeaderElector
from provisioner.controlplane.controllers.base import ControllerContext, Settings
from provisioner.controlplane.controllers.registry import CONTROLLERS

log = logging.getLogger("provisioner.controlplane.controllers")

LEASE_NAME = "kube-controller-manager"
COMPONENT = "controller-manager"


async def _first_to_end(roots: dict[str, Coroutine[Any, Any, Any]]) -> str:
    """Run named root tasks; when one ends, cancel the others; the name of the one that ended first."""
    first: list[str] = []
    tasks: list[asyncio.Task[Any]] = []

    def ended(task: asyncio.Task[Any]) -> None:
        if not first:
            first.append(task.get_name())
            for other in tasks:
                other.cancel()

    async with asyncio.TaskGroup() as group:
        for name, coro in roots.items():
            task = group.create_task(coro, name=name)
            task.add_done_callback(ended)
            tasks.append(task)
    return first[0]


async def run(
    *,
    kubeconfig: Path,
    identity: str,
    names: Sequence[str],
    settings: Settings,
    lease_timing: tuple[float, float, float],
    check_mutations: bool = False,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        informers = InformerFactory(client, check_mutations=check_mutations)
        ctx = ControllerContext(
            client=client,
            informers=informers,
            settings=settings,
            recorder=EventRecorder(client, component=COMPONENT, host=identity),
        )
        loops = [CONTROLLERS[name](ctx) for name in names]
        duration, deadline, retry = lease_timing
        elector = LeaderElector(
            client,
            lease_name=LEASE_NAME,
            identity=identity,
            lease_duration=duration,
            renew_deadline=deadline,
            retry_period=retry,
        )

        async def lead() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(informers.run(), name="informers")
                for control_loop in loops:
                    group.create_task(control_loop.run(), name=control_loop.name)

        first = "failure"
        try:
            first = await _first_to_end({"leader-election": elector.run(lead), "signals": stop.wait()})
        except* Exception as failures:
            log.error("controller manager failed: %r", failures.exceptions)
    log.info("controller manager stopping (%s ended first)", first)
    return 0 if first == "signals" else 1


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTROLLERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown controller(s) {', '.join(unknown)}; known: {', '.join(CONTROLLERS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m provisioner.controlplane.controllers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--identity", default=socket.gethostname(), help="this candidate's name in the Lease")
    parser.add_argument(
        "--controllers",
        type=_names,
        default=list(CONTROLLERS),
        help=f"comma-separated loops to run (default: all of {','.join(CONTROLLERS)})",
    )
    parser.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=defaults.node_monitor_grace_period,
        help="seconds without a node heartbeat before the node is Ready=Unknown",
    )
    parser.add_argument("--node-monitor-period", type=float, default=defaults.node_monitor_period)
    parser.add_argument(
        "--pod-eviction-timeout",
        type=float,
        default=defaults.pod_eviction_timeout,
        help="seconds a pod without a matching toleration stays on an unreachable node",
    )
    parser.add_argument(
        "--pod-gc-period", type=float, default=defaults.pod_gc_period, help="seconds between pod GC passes"
    )
    parser.add_argument(
        "--pod-gc-quarantine",
        type=float,
        default=defaults.pod_gc_quarantine,
        help="seconds a node must be missing before pod GC deletes the pods bound to it",
    )
    parser.add_argument(
        "--terminated-pod-gc-threshold",
        type=int,
        default=defaults.terminated_pod_gc_threshold,
        help="terminated pods kept before pod GC deletes the oldest (0 disables)",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="workers per loop")
    # a standby notices a dead leader within lease-duration + ~retry-period: 12 + 2 keeps hand-over under 15 s
    parser.add_argument("--lease-duration", type=float, default=12.0)
    parser.add_argument("--renew-deadline", type=float, default=8.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument(
        "--check-cache-mutations", action="store_true", help="fail if a loop mutates a cached object (for tests)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(
        node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period,
        pod_eviction_timeout=args.pod_eviction_timeout,
        pod_gc_period=args.pod_gc_period,
        pod_gc_quarantine=args.pod_gc_quarantine,
        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold,
        workers=args.workers,
    )
    lease_timing = (args.lease_duration, args.renew_deadline, args.retry_period)
    return asyncio.run(
        run(
            kubeconfig=args.kubeconfig,
            identity=args.identity,
            names=args.controllers,
            settings=settings,
            lease_timing=lease_timing,
            check_mutations=args.check_cache_mutations,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
