"""The local cloud's machine image, built in three cached layers so that a code change costs seconds, not minutes.

Layer 1, `rootfs-<hash>/`: a debootstrap of Debian 12 with every package a cluster machine needs and its
initramfs; its hash covers the package list, mirror, suite, initramfs settings and `ROOTFS_VERSION`.
Layer 2, `deps-<hash>/`: an overlayfs upper directory over layer 1 holding a wheelhouse of the project's
dependencies and a venv at /opt/provisioner/venv with them installed (so VMs never need the network); its hash
adds pyproject.toml. Layer 3, `image-<hash>/`: the project's own wheel installed into that venv (no
dependencies) plus the guest files and units of `guest.py`, the whole tree turned into an ext4 disk with
`mkfs.ext4 -d`, next to the kernel and initrd for direct boot; its hash adds every file of the package and
the guest configuration.

Layers are built in a temporary directory and renamed into place, so a crash never leaves half a layer.
Builds are serialised by a lock file in the cache; the cache is shared by every `$PROVISIONER_HOME`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fasteners

from provisioner.errors import ProvisionerError
from provisioner.infra import guest

__all__ = [
    "PACKAGES",
    "Image",
    "ImageInputs",
    "build_image",
    "current_inputs",
    "find_image",
    "image_cache_dir",
    "list_images",
    "prune_images",
]

ROOTFS_VERSION = "1"
DEPS_VERSION = "1"
IMAGE_VERSION = "2"
SUITE = "bookworm"
DISK_SIZE = "3G"
KEEP_IMAGES = 3
VENV = "/opt/provisioner/venv"
WHEELHOUSE = "/opt/provisioner/wheelhouse"

PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "openssh-server",
    "python3",
    "python3-venv",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "iproute2",
    "iputils-ping",
    "procps",
    "netbase",
    "e2fsprogs",
    "etcd-server",
    "etcd-client",
    "haproxy",
    "keepalived",
    "ca-certificates",
    "less",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageInputs:
    """Everything an image is a function of; the two hashes name its layers."""

    mirror: str
    packages: tuple[str, ...]
    pyproject_hash: str
    project_hash: str

    @property
    def rootfs_hash(self) -> str:
        return _digest(ROOTFS_VERSION, SUITE, self.mirror, self.packages, guest.INITRAMFS_FILES)[:16]

    @property
    def deps_hash(self) -> str:
        return _digest(DEPS_VERSION, self.rootfs_hash, self.pyproject_hash)[:16]

    @property
    def image_hash(self) -> str:
        units = (guest.ENABLED_UNITS, guest.DISABLED_UNITS)
        return _digest(IMAGE_VERSION, self.deps_hash, self.project_hash, DISK_SIZE, guest.GUEST_FILES, units)[:16]


@dataclass(frozen=True)
class Image:
    """A built image: an ext4 disk plus the kernel and initrd to boot it directly."""

    hash: str
    directory: Path
    created: float
    size_bytes: int
    inputs: dict[str, object]

    @property
    def disk(self) -> Path:
        return self.directory / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


def image_cache_dir() -> Path:
    """`$PROVISIONER_IMAGE_CACHE`, else /var/cache/provisioner/images for root, else ~/.cache/provisioner/images."""
    env = os.environ.get("PROVISIONER_IMAGE_CACHE", "")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/provisioner/images")
    return Path.home() / ".cache" / "provisioner" / "images"


def current_inputs() -> ImageInputs:
    root = _project_root()
    pyproject = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return ImageInputs(
        mirror=_apt_mirror(), packages=PACKAGES, pyproject_hash=pyproject, project_hash=_project_hash(root)
    )


def list_images(cache: Path | None = None) -> list[Image]:
    """Cached images, newest first."""
    root = cache or image_cache_dir()
    images = [_load(d) for d in root.glob("image-*") if (d / "image.json").is_file()] if root.is_dir() else []
    return sorted(images, key=lambda i: i.created, reverse=True)


def find_image(image_hash: str | None = None, *, cache: Path | None = None) -> Image:
    """The cached image with `image_hash`, or the one matching the current inputs; never builds."""
    wanted = image_hash or current_inputs().image_hash
    directory = (cache or image_cache_dir()) / f"image-{wanted}"
    if not (directory / "image.json").is_file():
        raise ProvisionerError(f"no local VM image {wanted} is built", hint="run `provision image build`")
    return _load(directory)


def build_image(*, cache: Path | None = None, progress: Progress = lambda _: None) -> Image:
    """Return the image for the current inputs, building whichever layers are missing."""
    root = cache or image_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    inputs = current_inputs()
    with fasteners.InterProcessLock(str(root / ".lock")):
        rootfs = root / f"rootfs-{inputs.rootfs_hash}"
        if rootfs.is_dir():
            progress(f"rootfs {inputs.rootfs_hash}: cached")
        else:
            _build_rootfs(rootfs, inputs=inputs, progress=progress)
        deps = root / f"deps-{inputs.deps_hash}"
        if deps.is_dir():
            progress(f"deps {inputs.deps_hash}: cached")
        else:
            _build_deps(deps, rootfs=rootfs, inputs=inputs, progress=progress)
        directory = root / f"image-{inputs.image_hash}"
        if (directory / "image.json").is_file():
            progress(f"image {inputs.image_hash}: cached")
        else:
            _build_image(directory, lower=[deps, rootfs], inputs=inputs, progress=progress)
        for removed in prune_images(root, keep=KEEP_IMAGES):
            progress(f"removed old layer {removed.name}")
    return _load(directory)


def prune_images(cache: Path, *, keep: int) -> list[Path]:
    """Remove all but the `keep` newest images, sparing any whose disk a running VM has open, and the
    rootfs/deps layers no remaining image is built on. Every code change makes a ~1 GB image, so this
    bounds the cache; a stopped VM on a removed image cannot start again (destroy and re-create it)."""
    images = list_images(cache)
    in_use = _open_files()
    doomed = [i for i in images[keep:] if str(i.disk) not in in_use]
    kept = [i for i in images if i not in doomed]
    layers = {f"rootfs-{i.inputs.get('rootfs')}" for i in kept} | {f"deps-{i.inputs.get('deps')}" for i in kept}
    doomed_dirs = [i.directory for i in doomed]
    doomed_dirs += [d for d in (*cache.glob("rootfs-*"), *cache.glob("deps-*")) if d.name not in layers and kept]
    for directory in doomed_dirs:
        shutil.rmtree(directory)
    return doomed_dirs


def _open_files() -> set[str]:
    """Paths that some process on this host holds open (readable /proc entries only)."""
    paths = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            paths.add(os.readlink(fd))
        except OSError:
            continue
    return paths


def _build_rootfs(target: Path, *, inputs: ImageInputs, progress: Progress) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    progress(f"rootfs {inputs.rootfs_hash}: debootstrap {SUITE} from {inputs.mirror} (a minute or two)")
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(inputs.packages)}", SUITE, str(tmp)]
    _run([*cmd, inputs.mirror], progress=progress, stream=True)
    for ssh_key in (tmp / "etc/ssh").glob("ssh_host_*"):  # every VM gets its own from its seed
        ssh_key.unlink()
    _write_files(tmp, guest.INITRAMFS_FILES)
    with _mounted_proc(tmp):
        progress(f"rootfs {inputs.rootfs_hash}: initramfs")
        _chroot(tmp, "update-initramfs", "-u", "-k", "all", progress=progress)
        _chroot(tmp, "apt-get", "clean", progress=progress)
    shutil.rmtree(tmp / "var/lib/apt/lists", ignore_errors=True)
    tmp.rename(target)


def _build_deps(target: Path, *, rootfs: Path, inputs: ImageInputs, progress: Progress) -> None:
    """The venv with every dependency, kept as the upper directory of an overlay on the rootfs."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        progress(f"deps {inputs.deps_hash}: wheelhouse of the project's dependencies")
        wheels = tmp / "wheels"
        _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), str(_project_root())], progress=progress)
        for own in wheels.glob("provisioner-*.whl"):
            own.unlink()
        with _overlay(lower=[rootfs], scratch=tmp) as merged:
            shutil.copytree(wheels, merged / WHEELHOUSE.lstrip("/"))
            progress(f"deps {inputs.deps_hash}: venv {VENV}")
            with _mounted_proc(merged):
                _chroot(merged, "python3", "-m", "venv", VENV, progress=progress)
                _pip_install(
                    merged, [f"{WHEELHOUSE}/{w.name}" for w in sorted(wheels.glob("*.whl"))], progress=progress
                )
        (tmp / "upper").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_image(target: Path, *, lower: list[Path], inputs: ImageInputs, progress: Progress) -> None:
    """The project's wheel on top of the dependency layer, as a bootable ext4 disk plus kernel and initrd."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        progress(f"image {inputs.image_hash}: the project's wheel")
        wheels = tmp / "wheels"
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(_project_root())],
            progress=progress,
        )
        (wheel,) = wheels.glob("provisioner-*.whl")
        with _overlay(lower=lower, scratch=tmp) as merged:
            shutil.copy(wheel, merged / WHEELHOUSE.lstrip("/"))
            _write_files(merged, guest.GUEST_FILES)
            with _mounted_proc(merged):
                _pip_install(merged, [f"{WHEELHOUSE}/{wheel.name}"], progress=progress)
                _chroot(merged, "systemctl", "enable", *guest.ENABLED_UNITS, progress=progress)
                _chroot(merged, "systemctl", "mask", *guest.DISABLED_UNITS, progress=progress)
            progress(f"image {inputs.image_hash}: mkfs.ext4 -d")
            _run(
                ["mkfs.ext4", "-q", "-L", "pvroot", "-d", str(merged), str(tmp / "disk.raw"), DISK_SIZE],
                progress=progress,
            )
            shutil.copyfile((merged / "vmlinuz").resolve(), tmp / "vmlinuz")
            shutil.copyfile((merged / "initrd.img").resolve(), tmp / "initrd.img")
        for scratch in ("upper", "work", "wheels", "merged"):
            shutil.rmtree(tmp / scratch)
        meta = {
            "hash": inputs.image_hash,
            "created": time.time(),
            "inputs": {
                "rootfs": inputs.rootfs_hash,
                "deps": inputs.deps_hash,
                "suite": SUITE,
                "mirror": inputs.mirror,
                "packages": list(inputs.packages),
                "project": inputs.project_hash,
            },
        }
        (tmp / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"image {inputs.image_hash}: ready")


@contextmanager
def _overlay(*, lower: list[Path], scratch: Path) -> Iterator[Path]:
    """Cached layers stay read-only: everything written in the merged tree lands in `scratch/upper`."""
    for d in ("upper", "work", "merged"):
        (scratch / d).mkdir()
    merged = scratch / "merged"
    opts = f"lowerdir={':'.join(map(str, lower))},upperdir={scratch / 'upper'},workdir={scratch / 'work'}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


@contextmanager
def _mounted_proc(root: Path) -> Iterator[None]:
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(proc)], check=True)


def _write_files(root: Path, files: dict[str, tuple[str, int]]) -> None:
    for rel, (text, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_text(text)
        path.chmod(mode)


def _pip_install(root: Path, wheels: list[str], *, progress: Progress) -> None:
    """Install exactly these wheels into the image's venv: offline, no resolver, no pip cache left in the layer."""
    _chroot(
        root,
        f"{VENV}/bin/pip",
        "install",
        "-q",
        "--no-cache-dir",
        "--no-index",
        "--no-deps",
        *wheels,
        progress=progress,
    )


def _chroot(root: Path, *argv: str, progress: Progress) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    _run(["chroot", str(root), *argv], progress=progress, env=env)


def _run(argv: list[str], *, progress: Progress, stream: bool = False, env: dict[str, str] | None = None) -> None:
    """Run a build step; stream its lines as progress when asked, and show its output tail when it fails."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-19:], line.rstrip()]
        if stream:
            progress("  " + line.rstrip())
    if proc.wait() != 0:
        raise ProvisionerError(
            f"image build step failed: {' '.join(argv[:3])} ... (exit {proc.returncode})\n" + "\n".join(tail),
            hint="fix the cause above and run `provision image build` again; finished layers stay cached",
        )


def _apt_mirror() -> str:
    """The Debian mirror apt on this host uses, so the image comes from the registry the host already reaches."""
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for stanza in source.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#")
            uri = fields.get("URIs", "").strip().split(" ")[0]
            if SUITE in fields.get("Suites", "").split() and uri.endswith("/debian"):
                return uri
    for line in (
        Path("/etc/apt/sources.list").read_text().splitlines() if Path("/etc/apt/sources.list").exists() else []
    ):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
            return parts[1]
    return "http://deb.debian.org/debian"


def _project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ProvisionerError(
            f"no pyproject.toml next to the provisioner package in {root}",
            hint="build images from a source checkout (pip install -e .)",
        )
    return root


def _project_hash(root: Path) -> str:
    """What the last layer installs: pyproject.toml plus every file of the package (no caches)."""
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes())
    for path in sorted((root / "provisioner").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _load(directory: Path) -> Image:
    meta = json.loads((directory / "image.json").read_text())
    size = sum(p.stat().st_blocks * 512 for p in directory.iterdir() if p.is_file())
    return Image(
        hash=meta["hash"], directory=directory, created=meta["created"], size_bytes=size, inputs=meta["inputs"]
    )
