"""`python -m provisioner.controlplane.scheduler --kubeconfig FILE --identity ID`: schedule while holding the Lease.

Every master runs one; only the holder of Lease kube-system/kube-scheduler schedules. Losing the Lease
ends the process (non-zero) so that its supervisor restarts it as a standby. uvloop runs the event
loop: bindings and watch events are most of the process's work, and its I/O paths are faster.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

import uvloop

from provisioner.controlplane.client import ApiClient, LeaderElector
from provisioner.controlplane.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

log = logging.getLogger("provisioner.controlplane.scheduler")


async def run(*, kubeconfig: Path, identity: str, scheduler_name: str, leader_elect: bool) -> int:
    """0 after a signal, 1 when leadership was lost (the process must restart as a standby)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        scheduler = Scheduler(client, scheduler_name=scheduler_name)
        if leader_elect:
            elector = LeaderElector(client, lease_name="kube-scheduler", identity=identity)
            work = asyncio.create_task(elector.run(scheduler.run), name="leader-election")
        else:
            work = asyncio.create_task(scheduler.run(), name="scheduler")
        stopping = asyncio.create_task(stop.wait(), name="signals")
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stopping):
            task.cancel()
        await asyncio.gather(work, stopping, return_exceptions=True)
        return 0 if stop.is_set() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioner.controlplane.scheduler", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--identity", default=socket.gethostname(), help="this candidate's name in the Lease")
    parser.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME)
    parser.add_argument("--no-leader-elect", dest="leader_elect", action="store_false",
                        help="schedule at once, without the Lease (a single scheduler only)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return uvloop.run(run(kubeconfig=args.kubeconfig, identity=args.identity,
                          scheduler_name=args.scheduler_name, leader_elect=args.leader_elect))


if __name__ == "__main__":
    sys.exit(main())
