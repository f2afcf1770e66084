"""`python -m provisioner.controlplane.agent --kubeconfig FILE --node-name NAME --address IP --root DIR`.

Runs until SIGTERM/SIGINT; the pods' processes keep running after it exits, and the next agent with
the same --root adopts them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import signal
import sys
from pathlib import Path

import yaml

from provisioner.controlplane.agent.agent import Agent, ServingCert
from provisioner.controlplane.agent.worker import WorkerSettings
from provisioner.controlplane.client import ApiClient

log = logging.getLogger("provisioner.controlplane.agent")


def _kubeconfig_ca(path: Path, *, root: Path) -> Path:
    """The cluster CA named by the kubeconfig (inline data is written to `<root>/cluster-ca.crt`)."""
    cluster = yaml.safe_load(path.read_text())["clusters"][0]["cluster"]
    if cluster.get("certificate-authority"):
        return path.parent / cluster["certificate-authority"]
    ca_file = root / "cluster-ca.crt"
    root.mkdir(parents=True, exist_ok=True)
    ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return ca_file


def _labels(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = None
    if args.tls_cert_file and args.tls_key_file:
        serving = ServingCert(args.tls_cert_file, args.tls_key_file,
                              args.client_ca_file or _kubeconfig_ca(args.kubeconfig, root=args.root))
    else:
        log.warning("no --tls-cert-file/--tls-key-file: container logs are not served (kubectl logs will fail)")
    settings = WorkerSettings(node_name=args.node_name, address=args.address, backoff_base=args.backoff_base,
                              backoff_cap=args.backoff_cap)
    async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
        agent = Agent(client, settings=settings, root=args.root, serving=serving, labels=_labels(args.node_labels),
                      log_port=args.log_port, lease_interval=args.lease_interval)
        work = asyncio.create_task(agent.run(), name="agent")
        stopping = asyncio.create_task(stop.wait(), name="signals")
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (work, stopping):
            task.cancel()
        results = await asyncio.gather(work, stopping, return_exceptions=True)
        failure = next((r for r in results if isinstance(r, Exception)), None)
        if failure is not None:
            log.error("agent failed: %r", failure)
        return 0 if stop.is_set() and failure is None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioner.controlplane.agent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--address", required=True, help="node address: InternalIP, podIP and the log endpoint")
    parser.add_argument("--root", type=Path, required=True, help="runtime state: container logs, pids, exits")
    parser.add_argument("--tls-cert-file", type=Path, help="server certificate for the log endpoint (cluster CA)")
    parser.add_argument("--tls-key-file", type=Path)
    parser.add_argument("--client-ca-file", type=Path, help="CA of log clients; default: the kubeconfig's CA")
    parser.add_argument("--log-port", type=int, default=10250)
    parser.add_argument("--node-labels", default="", help="extra Node labels, k=v,k2=v2")
    parser.add_argument("--backoff-base", type=float, default=10.0, help="first CrashLoopBackOff delay, seconds")
    parser.add_argument("--backoff-cap", type=float, default=300.0)
    parser.add_argument("--lease-interval", type=float, default=10.0,
                        help="seconds between heartbeats; keep several within the node monitor grace period")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
