"""`python -m provisioner.controlplane.apiserver --config FILE`: run one API server until SIGTERM.

uvloop runs the event loop: its faster TLS and I/O paths measurably raise requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import uvloop

from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.controlplane.apiserver.server import run


async def _main(config: ApiServerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(config, stop=stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioner.controlplane.apiserver")
    parser.add_argument("--config", required=True, type=Path, help="API server config (YAML, see config.py)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(_main(ApiServerConfig.load(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
