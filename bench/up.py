"""Wall time of `provision up` on local VMs, per phase, for 1 master + 1 node and 3 masters + 2 nodes.

The floor is what no configuration can beat: the same five VMs created through the `local` driver and
waited for until they answer SSH, measured in the same run (this machine is shared; its load drifts).
Then: up 1+1 and down; up 3+2, a re-run that changes nothing, and down. Everything happens under a
temporary PROVISIONER_HOME and is destroyed at the end, even on failure. The last line is JSON.

    .venv/bin/python bench/up.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from provisioner.cluster.ops import down
from provisioner.cluster.up import UpReport, up
from provisioner.infra.drivers import register_drivers
from provisioner.infra.haproxy import HaproxyLBDriver
from provisioner.infra.image import build_image
from provisioner.infra.local import LocalNodeDriver
from provisioner.spec import ClusterSpec


def boot_floor(cloud: Path, image: str) -> float:
    """Seconds until 3 masters + 2 nodes created through the driver all answer SSH."""
    driver = LocalNodeDriver(ex_state_dir=cloud)
    start = time.monotonic()
    nodes = [driver.create_node(f"floor-{i}", "small", image, ex_cluster="floor", ex_ports=(6443,) if i < 3 else ())
             for i in range(5)]
    driver.wait_until_running(nodes, wait_period=3, timeout=1200)
    seconds = time.monotonic() - start
    for node in driver.list_nodes(ex_cluster="floor"):
        driver.destroy_node(node)
    return seconds


def timed_up(spec: ClusterSpec) -> tuple[float, UpReport]:
    start = time.monotonic()
    report = up(spec, progress=lambda msg: print(f"  [{spec.name}] {msg}", flush=True))
    return time.monotonic() - start, report


def timed_down(name: str) -> float:
    start = time.monotonic()
    down(name)
    return time.monotonic() - start


def phases(report: UpReport) -> dict[str, float]:
    return {p.name: round(p.seconds, 1) for p in report.phases}


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-up-"))
    os.environ["PROVISIONER_HOME"] = str(home)
    register_drivers()
    cloud = home / "local-cloud"
    try:
        image = build_image().hash
        floor = boot_floor(cloud, image)
        print(f"floor: 5 VMs answer SSH after {floor:.1f} s", flush=True)
        up_1x1, report_1x1 = timed_up(ClusterSpec(name="bench1", masters=1, nodes=1))
        down_1x1 = timed_down("bench1")
        print(f"up 1+1: {up_1x1:.1f} s {phases(report_1x1)}; down {down_1x1:.1f} s", flush=True)
        spec = ClusterSpec(name="bench3", masters=3, nodes=2)
        up_3x2, report_3x2 = timed_up(spec)
        rerun, rerun_report = timed_up(spec)
        down_3x2 = timed_down("bench3")
        print(f"up 3+2: {up_3x2:.1f} s ({up_3x2 / floor:.1f}x the boot floor)", flush=True)
        for name, seconds in phases(report_3x2).items():
            print(f"  {name:<14} {seconds:7.1f} s")
        print(f"re-run 3+2: {rerun:.1f} s, changes: {len(rerun_report.changes)}; down 3+2: {down_3x2:.1f} s")
        print(json.dumps({"up_1x1_s": round(up_1x1, 1), "up_3x2_s": round(up_3x2, 1), "rerun_3x2_s": round(rerun, 1),
                          "down_3x2_s": round(down_3x2, 1), "floor_3x2_s": round(floor, 1),
                          "phases_3x2": phases(report_3x2), "phases_1x1": phases(report_1x1),
                          "rerun_changes_3x2": len(rerun_report.changes)}))
    finally:
        compute, balancers = LocalNodeDriver(ex_state_dir=cloud), HaproxyLBDriver(ex_state_dir=cloud)
        for balancer in balancers.list_balancers():
            balancers.destroy_balancer(balancer)
        for node in compute.list_nodes():
            compute.destroy_node(node)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
