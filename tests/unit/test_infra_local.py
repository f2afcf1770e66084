"""Pure parts of the local cloud: sizes, image identity, on-disk state, QEMU flags, seeds and the driver's refusals.

Nothing here starts a process; images are stand-in directories with an image.json.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
import time
from pathlib import Path

import pytest
from libcloud.compute.providers import get_driver as get_compute
from libcloud.loadbalancer.base import Algorithm, Member
from libcloud.loadbalancer.providers import get_driver as get_balancer

from provisioner.errors import ProvisionerError
from provisioner.infra import labnet
from provisioner.infra.cloudstate import CloudState, NodeRecord, VolumeRecord
from provisioner.infra.drivers import register_drivers
from provisioner.infra.haproxy import HaproxyLBDriver
from provisioner.infra.image import ImageInputs, find_image, list_images, prune_images
from provisioner.infra.keys import new_key_pair
from provisioner.infra.local import LocalNodeDriver
from provisioner.infra.qemu import VmSpec, qemu_argv
from provisioner.infra.seed import Identity, write_seed
from provisioner.infra.sizes import size_named


def fake_image(cache: Path, image_hash: str, *, created: float = 0.0) -> None:
    directory = cache / f"image-{image_hash}"
    directory.mkdir(parents=True)
    inputs = {"project": "p", "rootfs": f"r{image_hash}", "deps": f"d{image_hash}"}
    meta = {"hash": image_hash, "created": created or time.time(), "inputs": inputs}
    (directory / "image.json").write_text(json.dumps(meta))
    for name in ("disk.raw", "vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"x")


def node_record(name: str, **changes: object) -> NodeRecord:
    record = NodeRecord(
        name=name, cluster="c", size="small", image="img", state="stopped", ssh_port=2222,
        lab_address="10.88.1.10/24", lab_mac="52:54:88:00:01:0a", machine_id="0" * 32, host_key="", created=0.0,
    )  # fmt: skip
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


@pytest.fixture
def driver(tmp_path: Path) -> LocalNodeDriver:
    fake_image(tmp_path / "images", "img")
    return LocalNodeDriver(ex_state_dir=tmp_path / "state", ex_image_cache=tmp_path / "images")


# -- sizes and images ------------------------------------------------------------------------------------------


def test_unknown_size_names_the_known_ones() -> None:
    with pytest.raises(ProvisionerError) as err:
        size_named("huge")
    assert "huge" in err.value.message and "small" in err.value.hint


def test_sizes_are_listed_as_libcloud_node_sizes_with_vcpus(driver: LocalNodeDriver) -> None:
    small = {s.id: s for s in driver.list_sizes()}["small"]
    assert (small.ram, small.disk, small.extra["vcpus"]) == (1024, 8, 1)


BASE_INPUTS = ImageInputs(
    mirror="http://deb.debian.org/debian", packages=("python3",), pyproject_hash="p", project_hash="a"
)


def test_code_change_rebuilds_only_the_last_image_layer() -> None:
    changed = dataclasses.replace(BASE_INPUTS, project_hash="b")
    assert (changed.rootfs_hash, changed.deps_hash) == (BASE_INPUTS.rootfs_hash, BASE_INPUTS.deps_hash)
    assert changed.image_hash != BASE_INPUTS.image_hash


def test_dependency_change_rebuilds_the_venv_layer_but_not_the_rootfs() -> None:
    changed = dataclasses.replace(BASE_INPUTS, pyproject_hash="q")
    assert changed.rootfs_hash == BASE_INPUTS.rootfs_hash
    assert changed.deps_hash != BASE_INPUTS.deps_hash and changed.image_hash != BASE_INPUTS.image_hash


@pytest.mark.parametrize(
    "change", [{"packages": ("python3", "curl")}, {"mirror": "http://m"}], ids=["packages", "mirror"]
)
def test_package_or_mirror_change_rebuilds_every_layer(change: dict[str, object]) -> None:
    other = dataclasses.replace(BASE_INPUTS, **change)  # type: ignore[arg-type]
    assert other.rootfs_hash != BASE_INPUTS.rootfs_hash
    assert other.deps_hash != BASE_INPUTS.deps_hash and other.image_hash != BASE_INPUTS.image_hash


def test_missing_image_error_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(ProvisionerError) as err:
        find_image("0123456789abcdef", cache=tmp_path)
    assert "provision image build" in err.value.hint


def test_images_are_listed_newest_first(tmp_path: Path) -> None:
    fake_image(tmp_path, "old", created=100.0)
    fake_image(tmp_path, "new", created=200.0)
    (tmp_path / "image-half.tmp").mkdir()  # an interrupted build is not an image
    assert [i.hash for i in list_images(tmp_path)] == ["new", "old"]


def test_pruning_keeps_the_newest_images_and_any_a_vm_has_open(tmp_path: Path) -> None:
    for n, image_hash in enumerate(["a", "b", "c", "d"]):
        fake_image(tmp_path, image_hash, created=100.0 + n)
        (tmp_path / f"rootfs-r{image_hash}").mkdir()
        (tmp_path / f"deps-d{image_hash}").mkdir()
    with (tmp_path / "image-a" / "disk.raw").open("rb"):  # as a running VM's QEMU holds its backing file
        removed = prune_images(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["deps-db", "image-b", "rootfs-rb"]
    assert [i.hash for i in list_images(tmp_path)] == ["d", "c", "a"]


# -- state on disk ---------------------------------------------------------------------------------------------


def test_state_round_trips_records_and_ignores_unknown_fields(tmp_path: Path) -> None:
    state = CloudState(tmp_path)
    state.save_node(node_record("vm1", ports={"8000": 41000}))
    state.save_volume(VolumeRecord(name="v1", size_gb=2, node="vm1"))
    path = tmp_path / "nodes" / "vm1" / "node.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "from_a_newer_version": 1}))
    assert state.node("vm1") == node_record("vm1", ports={"8000": 41000})
    assert state.volumes() == [VolumeRecord(name="v1", size_gb=2, node="vm1")]
    assert state.node("vm2") is None


# -- QEMU command line and seed --------------------------------------------------------------------------------


def vm_spec(tmp_path: Path, **changes: object) -> VmSpec:
    spec = VmSpec(
        name="vm1", files=tmp_path, kernel=tmp_path / "k", initrd=tmp_path / "i", vcpus=2, ram_mb=1024,
        accel="tcg", machine_id="ab" * 16, ssh_port=40022, lab_switch=tmp_path / "sw", lab_mac="52:54:88:00:01:0a",
        ports={8000: 40800},
    )  # fmt: skip
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def test_qemu_forwards_only_to_loopback_and_plugs_the_lab_nic_into_the_switch(tmp_path: Path) -> None:
    argv = qemu_argv(vm_spec(tmp_path))
    mgmt = argv[argv.index("-netdev") + 1]
    assert mgmt == "user,id=mgmt,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp:127.0.0.1:40800-:8000"
    assert f"vde,id=lab,sock={tmp_path / 'sw'}" in argv
    assert "virtio-net-pci,netdev=lab,id=labnic,mac=52:54:88:00:01:0a" in argv


def test_qemu_boots_the_kernel_directly_with_identity_on_the_command_line(tmp_path: Path) -> None:
    argv = qemu_argv(vm_spec(tmp_path))
    cmdline = argv[argv.index("-append") + 1]
    assert "root=/dev/vda" in cmdline and "systemd.hostname=vm1" in cmdline
    assert f"systemd.machine_id={'ab' * 16}" in cmdline
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "k")
    assert "-daemonize" in argv and str(tmp_path / "qmp.sock") in " ".join(argv)


@pytest.mark.parametrize(
    ("accel", "flags"),
    [("tcg", ["-accel", "tcg,tb-size=128"]), ("kvm", ["-accel", "kvm", "-cpu", "host"])],
    ids=["tcg", "kvm"],
)
def test_qemu_accelerator_flags(tmp_path: Path, accel: str, flags: list[str]) -> None:
    argv = qemu_argv(vm_spec(tmp_path, accel=accel))
    start = argv.index("-accel")
    assert argv[start : start + len(flags)] == flags


def test_attached_volumes_come_back_on_restart_with_their_serial(tmp_path: Path) -> None:
    argv = qemu_argv(vm_spec(tmp_path, volumes=(("data1", tmp_path / "data1.qcow2"),)))
    assert "virtio-blk-pci,drive=vol-data1,id=dev-data1,serial=data1" in argv


def test_seed_carries_host_key_operator_key_and_lab_address(tmp_path: Path) -> None:
    key = new_key_pair("vm1")
    identity = Identity(
        hostname="vm1", authorized_key="ssh-ed25519 AAAA op", lab_address="10.88.1.10/24",
        lab_mac="52:54:88:00:01:0a", host_key=key,
    )  # fmt: skip
    write_seed(tmp_path / "seed.tar", identity)
    with tarfile.open(tmp_path / "seed.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        read = lambda name: tar.extractfile(members[name]).read().decode()  # type: ignore[union-attr]  # noqa: E731
        assert read("root/.ssh/authorized_keys") == "ssh-ed25519 AAAA op\n"
        assert members["etc/ssh/ssh_host_ed25519_key"].mode == 0o600 and members["root/.ssh"].mode == 0o700
        assert read("etc/ssh/ssh_host_ed25519_key.pub").strip() == key.public_openssh
        assert "Address=10.88.1.10/24" in read("etc/systemd/network/10-lab.network")
        assert "MACAddress=52:54:88:00:01:0a" in read("etc/systemd/network/10-lab.network")
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_lab_addresses_and_macs_follow_cluster_index_and_host() -> None:
    assert labnet.lab_address(3, 12) == "10.88.3.12/24"
    assert labnet.lab_mac(3, 12) == "52:54:88:00:03:0c"


# -- the driver's refusals -------------------------------------------------------------------------------------


def test_create_node_refuses_an_unknown_size(driver: LocalNodeDriver) -> None:
    with pytest.raises(ProvisionerError, match="unknown local VM size 'huge'"):
        driver.create_node("vm1", "huge", "img")


def test_create_node_refuses_a_missing_image(driver: LocalNodeDriver) -> None:
    with pytest.raises(ProvisionerError) as err:
        driver.create_node("vm1", "small", "feedfacefeedface")
    assert "provision image build" in err.value.hint


def test_create_node_refuses_a_duplicate_name(driver: LocalNodeDriver, tmp_path: Path) -> None:
    CloudState(tmp_path / "state").save_node(node_record("vm1"))
    with pytest.raises(ProvisionerError, match="already exists"):
        driver.create_node("vm1", "small", "img")


@pytest.mark.parametrize("name", ["VM1", "-vm", "a_b", ""], ids=["upper", "leading-dash", "underscore", "empty"])
def test_create_node_refuses_names_that_are_not_dns_labels(driver: LocalNodeDriver, name: str) -> None:
    with pytest.raises(ProvisionerError, match="invalid VM name"):
        driver.create_node(name, "small", "img")


def test_stopped_node_is_listed_as_stopped_with_its_addresses(driver: LocalNodeDriver, tmp_path: Path) -> None:
    CloudState(tmp_path / "state").save_node(node_record("vm1", ports={"8000": 41000}))
    (node,) = driver.list_nodes()
    assert (node.name, node.state, node.private_ips, node.public_ips) == (
        "vm1",
        "stopped",
        ["10.88.1.10"],
        ["127.0.0.1"],
    )
    assert node.extra["ports"] == {8000: 41000} and node.extra["ssh_port"] == 2222


def test_node_whose_qemu_is_gone_is_an_error(driver: LocalNodeDriver, tmp_path: Path) -> None:
    CloudState(tmp_path / "state").save_node(node_record("vm1", state="running", pid=0))
    (node,) = driver.list_nodes()
    assert node.state == "error"


def test_attached_volume_cannot_be_destroyed(driver: LocalNodeDriver, tmp_path: Path) -> None:
    CloudState(tmp_path / "state").save_volume(VolumeRecord(name="v1", size_gb=1, node="vm1"))
    (volume,) = driver.list_volumes()
    assert volume.state == "inuse"
    with pytest.raises(ProvisionerError, match="attached to vm1"):
        driver.destroy_volume(volume)


def test_balancer_refuses_members_off_loopback(tmp_path: Path) -> None:
    lb = HaproxyLBDriver(ex_state_dir=tmp_path)
    with pytest.raises(ProvisionerError, match="not a loopback address"):
        lb.create_balancer("web", 0, "tcp", Algorithm.ROUND_ROBIN, [Member(None, "10.88.1.10", 80)])
    assert lb.list_balancers() == []


def test_drivers_register_under_their_provider_names() -> None:
    register_drivers()
    register_drivers()  # idempotent
    assert get_compute("local") is LocalNodeDriver
    assert get_balancer("haproxy") is HaproxyLBDriver
