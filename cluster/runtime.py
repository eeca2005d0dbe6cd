"""Connecting to Ray: a new local cluster, a running one, or a remote one; failing fast.

The search never imports this module; only the CLI's executor factory does.
"""
from __future__ import annotations

import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from backtest.errors import UserError

#: Numba's on-disk cache must live at a fixed, writable path on every node (a Ray job's
#: working_dir moves every job, and the image pre-warms this directory at build time).
NUMBA_CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "osd-numba-cache")

CONNECT_TIMEOUT_S = 5.0

#: Keeps a private local cluster on 127.0.0.1: with this flag off, Ray takes the loopback
#: address as the node IP instead of the machine's routable one (same for test clusters).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class RayTarget:
    """Where to run: ``local`` (start a private cluster), ``auto`` (the running cluster),
    ``ray://host:port`` (Ray client) or ``host:port`` (a GCS address)."""

    address: str

    @property
    def host_port(self) -> tuple[str, int] | None:
        addr = self.address.removeprefix("ray://")
        if self.address in ("local", "auto") or ":" not in addr:
            return None
        host, _, port = addr.rpartition(":")
        try:
            return host, int(port)
        except ValueError:
            raise UserError(f"--address {self.address!r}: expected local, auto, host:port or ray://host:port") from None


def _check_reachable(host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {host}:{port}: {exc.strerror or exc}") from None


CODE_ROOT = str(Path(__file__).resolve().parents[1])


def worker_env() -> dict[str, str]:
    """Environment every Ray worker needs: the fixed numba cache dir."""
    return {"NUMBA_CACHE_DIR": NUMBA_CACHE_DIR}


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                include_dashboard: bool = False) -> Iterator[dict]:
    """Connect to (or start) Ray for the duration of the block; yields ``ray.cluster_resources()``.

    ``address=None`` joins a running cluster when one is reachable (``RAY_ADDRESS`` or a local
    head) and otherwise starts a private local cluster on 127.0.0.1.
    """
    import ray

    target = RayTarget(address or os.environ.get("RAY_ADDRESS") or "")
    runtime_env = {"env_vars": worker_env()}
    if ray.is_initialized():  # the caller owns the connection
        yield ray.cluster_resources()
        return
    if hp := target.host_port:
        _check_reachable(*hp)
        ray.init(address=target.address, runtime_env=runtime_env, log_to_driver=True)
    elif target.address == "auto":
        try:
            ray.init(address="auto", runtime_env=runtime_env)
        except ConnectionError as exc:
            raise UserError(f"--address auto: no running Ray cluster found ({exc})") from None
    else:
        if target.address in ("", None):
            try:  # join a running local head if there is one
                ray.init(address="auto", runtime_env=runtime_env)
            except ConnectionError:
                pass
        if not ray.is_initialized():
            # A private cluster bound to loopback: token auth adds nothing there, and the
            # generated token would otherwise be written to the user's home directory.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            os.environ.update(LOOPBACK_ENV)
            # workers of a private cluster import this checkout, not whatever is installed
            runtime_env["env_vars"]["PYTHONPATH"] = CODE_ROOT
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=include_dashboard, runtime_env=runtime_env,
                     _node_ip_address="127.0.0.1", configure_logging=False)
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()
