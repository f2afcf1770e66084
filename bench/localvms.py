"""How long until 3 and 5 local VMs answer SSH through the `local` driver, against plain QEMU as the floor.

The floor boots the same image with the same QEMU flags (`qemu.qemu_argv`) and the same seed disk, but
without the driver: no records, locks, accelerator probe or libcloud objects. Runs are ordered floor3,
driver3, driver5, floor5 so that a drift in the load of this shared machine hits both sides alike.
Memory is the host RSS of each driver-booted QEMU once all its VMs answer SSH. The last line is JSON.

    .venv/bin/python bench/localvms.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provisioner.infra import labnet
from provisioner.infra.accel import choose_accel
from provisioner.infra.hostproc import free_port, stop_process
from provisioner.infra.image import Image, build_image, image_cache_dir
from provisioner.infra.keys import ensure_operator_key, new_key_pair
from provisioner.infra.local import LocalNodeDriver
from provisioner.infra.qemu import VmSpec, launch, ssh_banner
from provisioner.infra.seed import Identity, write_seed
from provisioner.infra.sizes import size_named

SIZE = "small"


def floor(image: Image, count: int, work: Path) -> float:
    """Seconds from the first plain `qemu-system-x86_64` launch until every VM's sshd sends its banner."""
    shape = size_named(SIZE)
    cluster = work / f"floor{count}"
    labnet.ensure_switch(cluster)
    accel = choose_accel(image.kernel, cache_file=image_cache_dir() / "accel.json")
    operator_key = ensure_operator_key(work / "id_ed25519")
    specs = []
    start = time.monotonic()
    try:
        for i in range(count):
            host = 10 + i
            spec = VmSpec(
                name=f"floor{count}-{i}", files=cluster / f"vm{i}", kernel=image.kernel, initrd=image.initrd,
                vcpus=shape.vcpus, ram_mb=shape.ram_mb, accel=accel, machine_id=uuid.uuid4().hex,
                ssh_port=free_port(), lab_switch=labnet.switch_socket(cluster), lab_mac=labnet.lab_mac(200, host),
            )  # fmt: skip
            spec.files.mkdir(parents=True)
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.disk), str(spec.overlay),
                 f"{shape.disk_gb}G"], check=True,
            )  # fmt: skip
            identity = Identity(
                hostname=spec.name, authorized_key=operator_key, lab_address=labnet.lab_address(200, host),
                lab_mac=spec.lab_mac, host_key=new_key_pair(spec.name),
            )  # fmt: skip
            write_seed(spec.seed, identity)
            specs.append((spec, launch(spec)))
        waiting = [spec.ssh_port for spec, _ in specs]
        with ThreadPoolExecutor(max_workers=count) as pool:  # probe like the driver's list_nodes: in parallel
            while waiting:
                waiting = [port for port, up in zip(waiting, pool.map(ssh_banner, waiting), strict=True) if not up]
                time.sleep(0.5 if waiting else 0)
        return time.monotonic() - start
    finally:
        for spec, pid in specs:
            stop_process(pid, spec.monitor)
        labnet.stop_switch(cluster)
        shutil.rmtree(cluster)


def through_driver(image: Image, count: int, work: Path) -> tuple[float, list[float]]:
    """Seconds until `wait_until_running` returns for `count` new VMs, and each QEMU's RSS in MiB."""
    driver = LocalNodeDriver(ex_state_dir=work / "driver")
    start = time.monotonic()
    try:
        nodes = [
            driver.create_node(f"bench{count}-{i}", SIZE, image.hash, ex_cluster=f"bench{count}") for i in range(count)
        ]
        driver.wait_until_running(nodes, timeout=1200)
        seconds = time.monotonic() - start
        return seconds, [_rss_mib(n.extra["pid"]) for n in driver.list_nodes()]
    finally:
        for node in driver.list_nodes():
            driver.destroy_node(node)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> None:
    image = build_image(progress=lambda m: print(m, flush=True))
    print(f"image {image.hash}, size {SIZE} ({size_named(SIZE)})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-localvms-") as tmp:
        work = Path(tmp)
        floor3 = floor(image, 3, work)
        print(f"floor  3 VMs answer SSH: {floor3:6.1f} s", flush=True)
        ssh3, rss3 = through_driver(image, 3, work)
        print(f"driver 3 VMs answer SSH: {ssh3:6.1f} s  (x{ssh3 / floor3:.2f} of floor)", flush=True)
        ssh5, rss5 = through_driver(image, 5, work)
        print(f"driver 5 VMs answer SSH: {ssh5:6.1f} s", flush=True)
        floor5 = floor(image, 5, work)
        print(f"floor  5 VMs answer SSH: {floor5:6.1f} s  (driver x{ssh5 / floor5:.2f} of floor)", flush=True)
    rss = rss3 + rss5
    mem = sum(rss) / len(rss)
    print(f"host RSS per VM: {mem:.0f} MiB (min {min(rss):.0f}, max {max(rss):.0f})", flush=True)
    result = {
        "ssh3_s": round(ssh3, 1),
        "ssh5_s": round(ssh5, 1),
        "floor3_s": round(floor3, 1),
        "floor5_s": round(floor5, 1),
        "ratio3": round(ssh3 / floor3, 2),
        "ratio5": round(ssh5 / floor5, 2),
        "mem_per_vm_mb": round(mem),
        "size": SIZE,
        "image": image.hash,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
