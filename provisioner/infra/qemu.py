"""How one local VM runs: the QEMU command line, launching it detached, and probing its SSH.

QEMU daemonizes (`-daemonize`), so VMs outlive the `provision` process that started them; a VM is found
again through its pidfile and its monitor socket (see `hostproc.py`). Direct kernel boot
(`-kernel/-initrd/-append`) skips firmware menus and bootloaders. The management NIC is QEMU user-mode
networking with SSH forwarded to 127.0.0.1; the lab NIC plugs into the cluster's vde_switch, so lab addresses
exist only inside QEMU.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.errors import ProvisionerError
from provisioner.infra import guest
from provisioner.infra.qmp import Qmp

__all__ = [
    "VmSpec",
    "launch",
    "qemu_argv",
    "serial_tail",
    "ssh_banner",
]

QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class VmSpec:
    """Everything a QEMU process for one VM is started from; `files` is the VM's own directory."""

    name: str
    files: Path
    kernel: Path
    initrd: Path
    vcpus: int
    ram_mb: int
    accel: str
    machine_id: str
    ssh_port: int
    lab_switch: Path
    lab_mac: str
    lab_link_up: bool = True
    ports: dict[int, int] = field(default_factory=dict)  # guest port -> 127.0.0.1 port
    volumes: tuple[tuple[str, Path], ...] = ()

    @property
    def overlay(self) -> Path:
        return self.files / "disk.qcow2"

    @property
    def seed(self) -> Path:
        return self.files / "seed.tar"

    @property
    def monitor(self) -> Path:
        return self.files / "qmp.sock"

    @property
    def serial_log(self) -> Path:
        return self.files / "serial.log"

    @property
    def pidfile(self) -> Path:
        return self.files / "qemu.pid"


def qemu_argv(spec: VmSpec) -> list[str]:
    """The full command line; pure, so the flags can be read and tested without starting anything."""
    forwards = "".join(f",hostfwd=tcp:127.0.0.1:{host}-:{port}" for port, host in sorted(spec.ports.items()))
    accel = ["-accel", "kvm", "-cpu", "host"] if spec.accel == "kvm" else ["-accel", "tcg,tb-size=128"]
    # mitigations=off: page-table isolation makes every syscall flush QEMU's TCG TLB; these are lab VMs.
    identity = f"systemd.hostname={spec.name} systemd.machine_id={spec.machine_id}"
    cmdline = f"root=/dev/vda rw console=ttyS0 quiet mitigations=off {identity}"
    argv = [
        QEMU, "-name", spec.name, "-machine", "pc", *accel,
        "-smp", str(spec.vcpus), "-m", str(spec.ram_mb),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", f"file:{spec.serial_log}",
        "-kernel", str(spec.kernel), "-initrd", str(spec.initrd), "-append", cmdline,
        "-drive", f"file={spec.overlay},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=root",
        "-drive", f"file={spec.seed},if=none,id=seed,format=raw,readonly=on",
        "-device", f"virtio-blk-pci,drive=seed,serial={guest.SEED_SERIAL}",
        "-device", "virtio-rng-pci",
        "-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22{forwards}",
        "-device", f"virtio-net-pci,netdev=mgmt,mac={guest.MGMT_MAC}",
        "-netdev", f"vde,id=lab,sock={spec.lab_switch}",
        "-device", f"virtio-net-pci,netdev=lab,id=labnic,mac={spec.lab_mac}",
    ]  # fmt: skip
    for name, path in spec.volumes:
        argv += ["-blockdev", f"driver=qcow2,node-name=vol-{name},file.driver=file,file.filename={path}"]
        argv += ["-device", f"virtio-blk-pci,drive=vol-{name},id=dev-{name},serial={name[:20]}"]
    argv += ["-qmp", f"unix:{spec.monitor},server=on,wait=off", "-pidfile", str(spec.pidfile), "-daemonize"]
    return argv


def launch(spec: VmSpec) -> int:
    """Start the VM detached and return its PID; a QEMU that will not start is a ProvisionerError."""
    spec.monitor.unlink(missing_ok=True)
    done = subprocess.run(qemu_argv(spec), capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or not spec.pidfile.is_file():
        raise ProvisionerError(
            f"QEMU could not start VM {spec.name}: {done.stderr.strip()}\n{serial_tail(spec.serial_log)}",
            hint="check the image (`provision image list`) and that the forwarded ports are free",
        )
    if not spec.lab_link_up:
        with Qmp(spec.monitor) as qmp:
            qmp.execute("set_link", name="labnic", up=False)
    return int(spec.pidfile.read_text().strip())


def ssh_banner(port: int, *, timeout: float = 10.0) -> bool:
    """True once sshd in the guest answers. User-mode forwarding accepts TCP before the guest listens, so only
    the banner proves the VM is up; a loaded TCG guest can take seconds to fork sshd and send it, and giving up
    sooner would never see it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def serial_tail(path: Path, lines: int = 25) -> str:
    """The end of the serial console log, which is where a failed boot explains itself."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no serial console log)"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"serial console ({path}), last lines:\n{tail}"
