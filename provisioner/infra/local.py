"""libcloud compute provider `local`: real QEMU VMs on this host, booted from the locally built image.

Callers use only libcloud's NodeDriver surface (create_node, list_nodes, wait_until_running, reboot/stop/
start/destroy_node, volumes); local-only knobs are `ex_` arguments and `Node.extra`. `create_node` returns as
soon as QEMU runs (state PENDING); `list_nodes` turns a node RUNNING once its sshd answers, so libcloud's
`wait_until_running` means "answers SSH". A VM reaches the outside only through 127.0.0.1 forwards
(`extra["ssh_port"]`, `extra["ports"]`); VMs of one `ex_cluster` share a lab network with static addresses
(`private_ips`). All state is in files (`cloudstate.py`); QEMU runs detached, so any process can manage any VM.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from libcloud.compute.base import Node, NodeAuthSSHKey, NodeDriver, NodeImage, NodeLocation, NodeSize, StorageVolume
from libcloud.compute.types import NodeState, StorageVolumeState

from provisioner.errors import ProvisionerError
from provisioner.infra import labnet
from provisioner.infra.accel import choose_accel
from provisioner.infra.cloudstate import CloudState, ClusterRecord, NodeRecord, VolumeRecord, default_state_root
from provisioner.infra.hostproc import free_port, process_matches, stop_process
from provisioner.infra.image import Image, find_image, image_cache_dir, list_images
from provisioner.infra.keys import ensure_operator_key, new_key_pair
from provisioner.infra.qemu import VmSpec, launch, serial_tail, ssh_banner
from provisioner.infra.qmp import Qmp
from provisioner.infra.seed import Identity, write_seed
from provisioner.infra.sizes import SIZES, size_named

__all__ = ["LocalNodeDriver"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FIRST_HOST = 10
_STOP_TIMEOUT_S = 60.0
_DETACH_TIMEOUT_S = 60.0


class LocalNodeDriver(NodeDriver):
    """QEMU VMs with a user-mode management NIC (SSH on 127.0.0.1) and a vde_switch lab network per cluster."""

    type = "local"
    name = "Local QEMU VMs"
    website = "https://www.qemu.org/"
    features = {"create_node": ["ssh_key"]}
    NODE_STATE_MAP = {
        "creating": NodeState.PENDING,
        "booting": NodeState.PENDING,
        "running": NodeState.RUNNING,
        "stopped": NodeState.STOPPED,
        "crashed": NodeState.ERROR,
    }

    def __init__(
        self,
        key: str = "local",
        secret: str | None = None,
        secure: bool = True,
        host: str | None = None,
        port: int | None = None,
        *,
        ex_state_dir: str | Path | None = None,
        ex_image_cache: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(key=key, secret=secret, secure=secure, host=host, port=port, **kwargs)
        self._state = CloudState(Path(ex_state_dir) if ex_state_dir else default_state_root())
        self._images = Path(ex_image_cache) if ex_image_cache else image_cache_dir()

    # -- catalogue -------------------------------------------------------------------------------------------

    def list_sizes(self, location: NodeLocation | None = None) -> list[NodeSize]:
        return [
            NodeSize(
                id=s.name, name=s.name, ram=s.ram_mb, disk=s.disk_gb, bandwidth=None, price=0.0, driver=self,
                extra={"vcpus": s.vcpus},
            )
            for s in SIZES.values()
        ]  # fmt: skip

    def list_images(self, location: NodeLocation | None = None) -> list[NodeImage]:
        return [self._to_image(i) for i in list_images(self._images)]

    def list_locations(self) -> list[NodeLocation]:
        return [NodeLocation(id="local", name="this host", country="--", driver=self)]

    # -- nodes -----------------------------------------------------------------------------------------------

    def create_node(  # type: ignore[override]
        self,
        name: str,
        size: NodeSize | str,
        image: NodeImage | str,
        location: NodeLocation | None = None,
        auth: NodeAuthSSHKey | None = None,
        ex_cluster: str = "default",
        ex_ports: tuple[int, ...] = (),
    ) -> Node:
        """Start a VM (state PENDING); `ex_ports` are guest TCP ports to forward to free 127.0.0.1 ports."""
        if not _NAME.match(name):
            raise ProvisionerError(f"invalid VM name {name!r}", hint="use a DNS label: lowercase letters, digits, '-'")
        shape = size_named(size.id if isinstance(size, NodeSize) else size)
        built = find_image(image.id if isinstance(image, NodeImage) else image, cache=self._images)
        with self._state.lock():
            authorized_key = auth.pubkey if auth else ensure_operator_key(self._operator_key)
            if self._state.node(name):
                raise ProvisionerError(f"a local VM named {name!r} already exists", hint="destroy it or pick a name")
            cluster = self._cluster(ex_cluster)
            used = {
                int(n.lab_address.split("/")[0].rsplit(".", 1)[1])
                for n in self._state.nodes()
                if n.cluster == ex_cluster
            }
            host = min(set(range(_FIRST_HOST, 255)) - used)
            record = NodeRecord(
                name=name, cluster=ex_cluster, size=shape.name, image=built.hash, state="creating",
                ssh_port=free_port(), ports={str(p): free_port() for p in ex_ports},
                lab_address=labnet.lab_address(cluster.index, host), lab_mac=labnet.lab_mac(cluster.index, host),
                machine_id=uuid.uuid4().hex, host_key="", created=time.time(),
            )  # fmt: skip
            self._state.save_node(record)
            labnet.ensure_switch(self._state.cluster_dir(ex_cluster))
        try:
            host_key = new_key_pair(name)
            record = replace(record, host_key=host_key.public_openssh)
            spec = self._spec(record, built)
            _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(built.disk), str(spec.overlay),
                  f"{shape.disk_gb}G"])  # fmt: skip
            identity = Identity(
                hostname=name, authorized_key=authorized_key, lab_address=record.lab_address,
                lab_mac=record.lab_mac, host_key=host_key,
            )  # fmt: skip
            write_seed(spec.seed, identity)
            record = replace(record, state="booting", pid=launch(spec))
            self._state.save_node(record)
        except BaseException:
            self._remove(record)
            raise
        return self._to_node(record, probe=False)

    def list_nodes(self, ex_cluster: str | None = None) -> list[Node]:  # type: ignore[override]
        records = [r for r in self._state.nodes() if ex_cluster is None or r.cluster == ex_cluster]
        with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
            return list(pool.map(self._to_node, records))

    def ex_get_node(self, name: str) -> Node:
        return self._to_node(self._record(name))

    def wait_until_running(  # type: ignore[override]
        self,
        nodes: list[Node],
        wait_period: float = 0.5,
        timeout: int = 600,
        ssh_interface: str = "public_ips",
        force_ipv4: bool = True,
        ex_list_nodes_kwargs: dict[str, Any] | None = None,
    ) -> list[tuple[Node, list[str]]]:
        """Like libcloud's, but a VM whose QEMU died, or that never answers SSH, fails with its console log."""
        names = [n.name for n in nodes]
        deadline = time.monotonic() + timeout
        while True:
            current = {n.name: n for n in self.list_nodes() if n.name in names}
            for name in names:
                node = current.get(name)
                if node is None:
                    raise ProvisionerError(f"local VM {name} disappeared while booting")
                if node.state == NodeState.ERROR:
                    raise ProvisionerError(f"local VM {name} failed to boot\n{node.extra['console']}")
            if all(current[n].state == NodeState.RUNNING for n in names):
                return [(current[n], current[n].public_ips) for n in names]
            if time.monotonic() > deadline:
                late = [n for n in names if current[n].state != NodeState.RUNNING]
                tails = "\n".join(serial_tail(self._spec_of(self._record(n)).serial_log) for n in late)
                raise ProvisionerError(
                    f"local VMs {', '.join(late)} did not answer SSH within {timeout} s\n{tails}",
                    hint="the console log above shows how far the boot got",
                )
            time.sleep(wait_period)

    def reboot_node(self, node: Node) -> bool:
        """A hard reset (QMP system_reset); the node is PENDING until sshd answers again."""
        record = self._running(node.name)
        with Qmp(self._spec_of(record).monitor) as qmp:
            qmp.execute("system_reset")
        self._state.save_node(replace(record, state="booting"))
        return True

    def stop_node(self, node: Node) -> bool:
        """ACPI power-off, forced after a timeout; disk, identity, ports and volumes are kept for start_node."""
        record = self._running(node.name)
        spec = self._spec_of(record)
        try:
            with Qmp(spec.monitor) as qmp:
                qmp.execute("system_powerdown")
        except ProvisionerError:
            pass  # already going down; the wait below decides
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while process_matches(record.pid, spec.monitor) and time.monotonic() < deadline:
            time.sleep(0.2)
        stop_process(record.pid, spec.monitor)
        spec.monitor.unlink(missing_ok=True)
        self._state.save_node(replace(record, state="stopped", pid=0))
        return True

    def start_node(self, node: Node) -> bool:
        record = self._record(node.name)
        if record.state != "stopped":
            raise ProvisionerError(f"local VM {record.name} is not stopped ({record.state})")
        record = replace(record, state="booting")
        self._state.save_node(replace(record, pid=launch(self._spec_of(record))))
        return True

    def destroy_node(self, node: Node) -> bool:
        """Stop QEMU, release its volumes and remove every file; the last VM of a cluster takes the switch."""
        self._remove(self._record(node.name))
        return True

    def ex_set_lab_link(self, node: Node, *, up: bool) -> None:
        """Cut (`up=False`) or restore a VM's lab NIC; the guest sees the carrier drop, the VM keeps running."""
        record = self._running(node.name)
        with Qmp(self._spec_of(record).monitor) as qmp:
            qmp.execute("set_link", name="labnic", up=up)
        self._state.save_node(replace(record, lab_link_up=up))

    # -- volumes ---------------------------------------------------------------------------------------------

    def list_volumes(self) -> list[StorageVolume]:
        return [self._to_volume(v) for v in self._state.volumes()]

    def create_volume(  # type: ignore[override]
        self, size: int, name: str, location: NodeLocation | None = None, snapshot: Any = None
    ) -> StorageVolume:
        """A qcow2 disk of `size` GiB, unattached; the guest sees it as /dev/disk/by-id/virtio-<name>."""
        if not _NAME.match(name) or len(name) > 20:
            raise ProvisionerError(f"invalid volume name {name!r}", hint="use up to 20 lowercase letters, digits, '-'")
        with self._state.lock():
            if self._state.volume(name):
                raise ProvisionerError(f"a local volume named {name!r} already exists")
            path = self._state.volume_file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            _run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{int(size)}G"])
            record = VolumeRecord(name=name, size_gb=int(size))
            self._state.save_volume(record)
        return self._to_volume(record)

    def attach_volume(self, node: Node, volume: StorageVolume, device: str | None = None) -> bool:
        """Hot-plug the disk into the running VM (QMP blockdev-add + device_add of a virtio-blk-pci)."""
        with self._state.lock():
            record = self._running(node.name)
            vol = self._volume(volume.name)
            if vol.node:
                raise ProvisionerError(f"volume {vol.name} is already attached to {vol.node}")
            with Qmp(self._spec_of(record).monitor) as qmp:
                qmp.execute(
                    "blockdev-add", driver="qcow2", **{"node-name": f"vol-{vol.name}"},
                    file={"driver": "file", "filename": str(self._state.volume_file(vol.name))},
                )  # fmt: skip
                qmp.execute(
                    "device_add",
                    driver="virtio-blk-pci",
                    id=f"dev-{vol.name}",
                    drive=f"vol-{vol.name}",
                    serial=vol.name,
                )
            self._state.save_volume(replace(vol, node=record.name))
        return True

    def detach_volume(self, volume: StorageVolume) -> bool:
        """Unplug the disk; the guest must acknowledge the PCI unplug (it does once booted)."""
        with self._state.lock():
            vol = self._volume(volume.name)
            record = self._state.node(vol.node) if vol.node else None
            if record is None:
                raise ProvisionerError(f"volume {vol.name} is not attached")
            spec = self._spec_of(record)
            if process_matches(record.pid, spec.monitor):
                with Qmp(spec.monitor, timeout=_DETACH_TIMEOUT_S) as qmp:
                    qmp.execute("device_del", id=f"dev-{vol.name}")
                    qmp.wait_event("DEVICE_DELETED", timeout=_DETACH_TIMEOUT_S, match={"device": f"dev-{vol.name}"})
                    qmp.execute("blockdev-del", **{"node-name": f"vol-{vol.name}"})
            self._state.save_volume(replace(vol, node=""))
        return True

    def destroy_volume(self, volume: StorageVolume) -> bool:
        with self._state.lock():
            vol = self._volume(volume.name)
            if vol.node:
                raise ProvisionerError(f"volume {vol.name} is attached to {vol.node}", hint="detach it first")
            self._state.remove_volume(vol.name)
        return True

    # -- internals -------------------------------------------------------------------------------------------

    @property
    def _operator_key(self) -> Path:
        return self._state.root / "id_ed25519"

    def _cluster(self, name: str) -> ClusterRecord:
        clusters = {c.name: c for c in self._state.clusters()}
        if name in clusters:
            return clusters[name]
        free = sorted(set(range(1, 255)) - {c.index for c in clusters.values()})
        if not free:
            raise ProvisionerError("all 254 local lab networks are in use", hint="destroy unused local clusters")
        record = ClusterRecord(name=name, index=free[0])
        self._state.save_cluster(record)
        return record

    def _record(self, name: str) -> NodeRecord:
        record = self._state.node(name)
        if record is None:
            raise ProvisionerError(f"no local VM named {name!r}")
        return record

    def _running(self, name: str) -> NodeRecord:
        record = self._record(name)
        if not process_matches(record.pid, self._spec_of(record).monitor):
            raise ProvisionerError(f"local VM {name} is not running ({record.state})", hint="start it first")
        return record

    def _volume(self, name: str) -> VolumeRecord:
        vol = self._state.volume(name)
        if vol is None:
            raise ProvisionerError(f"no local volume named {name!r}")
        return vol

    def _spec_of(self, record: NodeRecord) -> VmSpec:
        return self._spec(record, find_image(record.image, cache=self._images))

    def _spec(self, record: NodeRecord, image: Image) -> VmSpec:
        shape = size_named(record.size)
        volumes = tuple(
            (v.name, self._state.volume_file(v.name)) for v in self._state.volumes() if v.node == record.name
        )
        return VmSpec(
            name=record.name, files=self._state.node_dir(record.name), kernel=image.kernel, initrd=image.initrd,
            vcpus=shape.vcpus, ram_mb=shape.ram_mb,
            accel=choose_accel(image.kernel, cache_file=self._images / "accel.json"),
            machine_id=record.machine_id, ssh_port=record.ssh_port,
            lab_switch=labnet.switch_socket(self._state.cluster_dir(record.cluster)), lab_mac=record.lab_mac,
            lab_link_up=record.lab_link_up, ports={int(g): h for g, h in record.ports.items()}, volumes=volumes,
        )  # fmt: skip

    def _remove(self, record: NodeRecord) -> None:
        with self._state.lock():
            files = self._state.node_dir(record.name)
            stop_process(record.pid, files / "qmp.sock", timeout=5.0)
            for vol in self._state.volumes():
                if vol.node == record.name:
                    self._state.save_volume(replace(vol, node=""))
            shutil.rmtree(files, ignore_errors=True)
            if not any(n.cluster == record.cluster for n in self._state.nodes()):
                cluster_dir = self._state.cluster_dir(record.cluster)
                labnet.stop_switch(cluster_dir)
                shutil.rmtree(cluster_dir, ignore_errors=True)

    def _to_node(self, record: NodeRecord, probe: bool = True) -> Node:
        files = self._state.node_dir(record.name)
        state = record.state
        if state not in ("stopped", "creating") and not process_matches(record.pid, files / "qmp.sock"):
            state = "crashed"
        elif state == "booting" and probe and ssh_banner(record.ssh_port):
            state = "running"
            with self._state.lock():
                current = self._state.node(record.name)
                if current is not None and current.state == "booting":
                    self._state.save_node(replace(current, state="running"))
        extra = {
            "cluster": record.cluster,
            "ssh_host": "127.0.0.1",
            "ssh_port": record.ssh_port,
            "ssh_user": "root",
            "ssh_key_file": str(self._operator_key),
            "host_key": record.host_key,
            "ports": {int(g): h for g, h in record.ports.items()},
            "lab_address": record.lab_address,
            "lab_link_up": record.lab_link_up,
            "pid": record.pid,
            "console_log": str(files / "serial.log"),
            "console": serial_tail(files / "serial.log") if state == "crashed" else "",
        }
        shape = SIZES[record.size]
        return Node(
            id=record.name, name=record.name, state=self.NODE_STATE_MAP.get(state, NodeState.UNKNOWN),
            public_ips=["127.0.0.1"], private_ips=[record.lab_address.split("/")[0]], driver=self,
            size=NodeSize(id=shape.name, name=shape.name, ram=shape.ram_mb, disk=shape.disk_gb, bandwidth=None,
                          price=0.0, driver=self),
            image=NodeImage(id=record.image, name=f"debian-12-{record.image}", driver=self),
            created_at=None, extra=extra,
        )  # fmt: skip

    def _to_image(self, image: Image) -> NodeImage:
        extra = {"created": image.created, "size_bytes": image.size_bytes, "inputs": image.inputs}
        return NodeImage(id=image.hash, name=f"debian-12-{image.hash}", driver=self, extra=extra)

    def _to_volume(self, record: VolumeRecord) -> StorageVolume:
        return StorageVolume(
            id=record.name, name=record.name, size=record.size_gb, driver=self,
            state=StorageVolumeState.INUSE if record.node else StorageVolumeState.AVAILABLE,
            extra={"node": record.node, "path": str(self._state.volume_file(record.name)),
                   "guest_device": f"/dev/disk/by-id/virtio-{record.name}"},
        )  # fmt: skip


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProvisionerError(f"{argv[0]} failed: {done.stderr.strip()}")
