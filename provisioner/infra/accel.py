"""Which QEMU accelerator really works here: KVM only if a guest kernel actually boots on it.

`/dev/kvm` can exist and still crash guest kernels (nested, software-emulated KVM), so its presence proves
nothing. The probe boots the image's kernel under KVM without a root disk: a kernel that gets as far as
"VFS: Unable to mount root fs" has run its whole early boot on KVM, and `panic=-1 -no-reboot` make QEMU
exit right there. Anything else (a crash, a hang until the timeout) means TCG. The verdict is cached per
kernel (by content) and QEMU binary, so the probe runs once; `PROVISIONER_ACCEL=kvm|tcg` overrides it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["choose_accel"]

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 20
_SUCCESS = b"VFS: Unable to mount root fs"


def choose_accel(kernel: Path, *, cache_file: Path) -> str:
    """Return "kvm" or "tcg" for booting `kernel`."""
    forced = os.environ.get("PROVISIONER_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = _probe_key(kernel)
    cached = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if key not in cached:
        cached[key] = "kvm" if _kernel_boots_on_kvm(kernel) else "tcg"
        log.info("accelerator probe for %s: %s", kernel, cached[key])
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cached, indent=2) + "\n")
    return str(cached[key])


def _kernel_boots_on_kvm(kernel: Path) -> bool:
    argv = [
        "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(kernel),
        "-append", "console=ttyS0 panic=-1",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return False
    return _SUCCESS in done.stdout


def _probe_key(kernel: Path) -> str:
    """Kernel content and QEMU binary identity; memoised per file version, as every VM start asks."""
    qemu = Path(shutil.which("qemu-system-x86_64") or "qemu-system-x86_64")
    return _digest(str(kernel.resolve()), _version(kernel), str(qemu), _version(qemu))


def _version(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(kernel: str, kernel_version: tuple[int, int], qemu: str, qemu_version: tuple[int, int]) -> str:
    return hashlib.sha256(Path(kernel).read_bytes() + f"{qemu}{qemu_version}".encode()).hexdigest()[:16]
