"""`provision image build|list`: the local VM image as a CLI sub-app (registered by `cli.py`).

Part of the CLI layer, so it renders; the work is `image.build_image` and `image.list_images`.
"""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from provisioner.infra.image import build_image, current_inputs, image_cache_dir, list_images

__all__ = ["image_app"]

image_app = typer.Typer(help="The local VM image (Debian 12, built with debootstrap, cached).", no_args_is_help=True)

_out = Console()
_err = Console(stderr=True, soft_wrap=True)


@image_app.command("build")
def build() -> None:
    """Build the image for the current sources, reusing every cached layer whose inputs did not change."""
    start = time.monotonic()
    with _err.status("building") as spinner:

        def progress(message: str) -> None:
            spinner.update(message.strip())
            if not message.startswith("  "):
                _err.print(f"[{time.monotonic() - start:5.0f}s] {message}", highlight=False)

        image = build_image(progress=progress)
    _out.print(f"image {image.hash} ({image.size_bytes / 2**20:.0f} MiB) in {image.directory}", highlight=False)


@image_app.command("list")
def list_() -> None:
    """Show cached images: hash, size on disk, build date and the hashes of their inputs (layers, sources, package
    count); `*` marks the image for the current sources."""
    current = current_inputs().image_hash
    table = Table("", "hash", "size", "built", "rootfs", "deps", "project", "packages", title=str(image_cache_dir()))
    for image in list_images():
        table.add_row(
            "*" if image.hash == current else "",
            image.hash,
            f"{image.size_bytes / 2**20:.0f} MiB",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(image.created)),
            str(image.inputs.get("rootfs", "")),
            str(image.inputs.get("deps", "")),
            str(image.inputs.get("project", "")),
            str(len(image.inputs.get("packages", []))),  # type: ignore[arg-type]
        )
    _out.print(table)
    if current not in {i.hash for i in list_images()}:
        _out.print(f"no image for the current sources ({current}); run `provision image build`", highlight=False)
