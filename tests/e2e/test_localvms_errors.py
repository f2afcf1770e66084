"""Failed boots of local VMs explain themselves and leave nothing behind."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError
from provisioner.infra.image import Image, build_image
from provisioner.infra.local import LocalNodeDriver

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]


def broken_image(cache: Path, image_hash: str, *, kernel: bytes | Path, disk_bytes: int = 64 << 20) -> None:
    """An image directory whose kernel or root disk is unusable."""
    directory = cache / f"image-{image_hash}"
    directory.mkdir(parents=True)
    (directory / "image.json").write_text(json.dumps({"hash": image_hash, "created": time.time(), "inputs": {}}))
    if isinstance(kernel, Path):
        shutil.copyfile(kernel, directory / "vmlinuz")
        shutil.copyfile(kernel.with_name("initrd.img"), directory / "initrd.img")
    else:
        (directory / "vmlinuz").write_bytes(kernel)
        (directory / "initrd.img").write_bytes(b"")
    with (directory / "disk.raw").open("wb") as disk:
        disk.truncate(disk_bytes)


def assert_nothing_left(driver: LocalNodeDriver, state: Path) -> None:
    assert driver.list_nodes() == []
    assert not list(state.glob("nodes/*")) and not list(state.glob("clusters/*"))


def test_qemu_that_cannot_start_reports_why_and_leaves_nothing(tmp_path: Path) -> None:
    broken_image(tmp_path / "images", "badkernel", kernel=b"not a kernel")
    driver = LocalNodeDriver(ex_state_dir=tmp_path / "state", ex_image_cache=tmp_path / "images")
    with pytest.raises(ProvisionerError) as err:
        driver.create_node("broken", "tiny", "badkernel")
    assert "QEMU could not start VM broken" in err.value.message
    assert "kernel" in err.value.message.lower()
    assert_nothing_left(driver, tmp_path / "state")


def test_vm_that_never_reaches_ssh_fails_with_its_console_log(tmp_path: Path) -> None:
    real: Image = build_image()
    broken_image(tmp_path / "images", "emptyroot", kernel=real.kernel)  # real kernel, blank root disk
    driver = LocalNodeDriver(ex_state_dir=tmp_path / "state", ex_image_cache=tmp_path / "images")
    node = driver.create_node("noroot", "tiny", "emptyroot")
    try:
        with pytest.raises(ProvisionerError) as err:
            driver.wait_until_running([node], timeout=90)
        assert "did not answer SSH within 90 s" in err.value.message
        # the console tail in the error is the initramfs giving up on the blank root disk
        assert "serial console" in err.value.message and "/dev/vda does not exist" in err.value.message
    finally:
        driver.destroy_node(node)
    assert_nothing_left(driver, tmp_path / "state")
